"""recipes/evaluate.py: a trained run's detector evaluated again, and its precision curves."""
import argparse
import glob
import json
import logging
import os
import re
import shutil
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'recipes'))

import evaluate  # noqa: E402  pylint: disable=wrong-import-position
import evaluation  # noqa: E402  pylint: disable=wrong-import-position
import train_faster_rcnn  # noqa: E402  pylint: disable=wrong-import-position
import train_ssd  # noqa: E402  pylint: disable=wrong-import-position

CLASSES = ['disc', 'square', 'triangle']


def train(recipe, voc_root, prefix):
    """One iteration of a recipe, evaluated on 8 validation images."""
    module = {'faster_rcnn': train_faster_rcnn, 'ssd': train_ssd}[recipe]
    return module.main(['--dataset-root', voc_root, '--num-train-images', '4', '--batch-size',
                        '2', '--num-val-images', '8', '--epochs', '1', '--max-iters', '1',
                        '--save-prefix', str(prefix)])


@pytest.mark.parametrize('recipe', ['faster_rcnn', 'ssd'])
def test_evaluation_repeats_the_runs_own(voc_root, tmp_path, recipe, cpu_devices):
    prefix = str(tmp_path / recipe)
    trained = train(recipe, voc_root, prefix)
    # on more devices than the run's batch of 2 too, into a folder of its own
    spread = evaluate.main([prefix, '--gpus', '0', '1', '2', '--output',
                            str(tmp_path / 'new' / 'three')])
    result = evaluate.main([prefix])
    assert result['map'] == trained['final']['map']            # same net, images and code
    assert spread['map'] == result['map']
    assert result['map']['mAP'] > 0                             # detections were compared
    assert result['images'] == 8 and result['recipe'] == 'train_' + recipe
    assert (result['dataset'], result['dataset_root']) == ('synthetic', voc_root)  # the run's
    with open(prefix + '-eval.json') as f:
        assert json.load(f) == json.loads(json.dumps(result))
    with open(prefix + '-eval.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert sorted(result['precision']) == CLASSES
    for name, curve in result['precision'].items():
        if curve is not None:
            assert len(curve) == 101 and np.all(np.diff(curve) <= 0)
            assert all(0 <= p <= 1 for p in curve)


def test_other_images_and_bad_runs(voc_root, tmp_path):
    prefix = str(tmp_path / 'run')
    trained = train('faster_rcnn', voc_root, prefix)
    # a run older than a flag takes the flag's default
    with open(prefix + '.json') as f:
        run = json.load(f)
    del run['args']['network']
    with open(str(tmp_path / 'old.json'), 'w') as f:
        json.dump(run, f)
    shutil.copy(prefix + '.params', str(tmp_path / 'old.params'))
    assert evaluate.main([str(tmp_path / 'old')])['map'] == trained['final']['map']
    assert evaluate.main([prefix, '--num-val-images', 'all', '--output',
                          str(tmp_path / 'all')])['images'] == 100
    # a run's params or metrics file stands for its prefix; an output's file for its own
    assert evaluate.parse_args([prefix + '.params', '--output', 'out.png']).prefix == prefix
    evaluate.main([prefix + '.json', '--output', str(tmp_path / 'named.json')])
    assert sorted(glob.glob(str(tmp_path / 'named*'))) == [
        str(tmp_path / name) for name in ('named.json', 'named.log', 'named.png')]
    with pytest.raises(SystemExit):
        evaluate.parse_args([prefix, '--num-val-images', '0'])
    with pytest.raises(SystemExit):                     # would overwrite the run's files
        evaluate.parse_args([prefix, '--output', prefix + '.json'])
    with pytest.raises(SystemExit, match='no training run'):
        evaluate.main([str(tmp_path / 'missing')])
    # a dist_sync run's prefix: its workers' runs are named
    for extension in ('.json', '.params'):
        shutil.copy(prefix + extension, str(tmp_path / ('dist-worker0' + extension)))
    with pytest.raises(SystemExit, match='several workers.*dist-worker0 first'):
        evaluate.main([str(tmp_path / 'dist')])
    with open(prefix + '.json') as f:
        run = json.load(f)
    with open(prefix + '.json', 'w') as f:
        json.dump(dict(run, classes=['cat', 'dog']), f)
    with pytest.raises(SystemExit, match='trained for classes'):
        evaluate.main([prefix])


def test_a_run_evaluated_on_voc_format_data_with_its_own_classes(voc_root, tmp_path):
    # the synthetic dataset is a VOCdevkit layout: read as --dataset voc (for the run's
    # classes, its val split) it must give the run's own evaluation
    prefix = str(tmp_path / 'run')
    trained = train('faster_rcnn', voc_root, prefix)
    result = evaluate.main([prefix, '--dataset', 'voc', '--dataset-root', voc_root,
                            '--val-splits', '2007:val', '--output', str(tmp_path / 'voc')])
    assert result['dataset'] == 'voc' and result['images'] == 8
    assert result['map'] == trained['final']['map']
    with pytest.raises(SystemExit, match='ImageSets/Main/test.txt'):      # VOC07 test by default
        evaluate.main([prefix, '--dataset', 'voc', '--dataset-root', voc_root])
    with pytest.raises(SystemExit, match='--val-splits needs --dataset voc, not synthetic'):
        evaluate.main([prefix, '--val-splits', '2007:val'])
    # the same images with other class names: nothing of the run's classes to evaluate
    other = tmp_path / 'other'
    shutil.copytree(voc_root, str(other))
    for path in glob.glob(str(other / 'VOC2007' / 'Annotations' / '*.xml')):
        with open(path) as f:
            text = f.read()
        with open(path, 'w') as f:
            f.write(re.sub('<name>[a-z]+</name>', '<name>cat</name>', text))
    with pytest.raises(SystemExit, match="hold no object of the run's classes"):
        evaluate.main([prefix, '--dataset', 'voc', '--dataset-root', str(other),
                       '--val-splits', '2007:val', '--output', str(tmp_path / 'cats')])
    assert not os.path.exists(str(tmp_path / 'cats.json'))


def test_settings_take_the_runs_flags_but_the_evaluations_devices_and_images():
    # a run on 2 GPUs with 4 workers and 8 validation images, evaluated by default on the
    # CPU without workers on all images: the evaluation's own values, never the run's
    run = {'recipe': 'train_ssd', 'classes': CLASSES,
           'args': {'dataset_root': '/data/run', 'gpus': [0, 1], 'num_workers': 4,
                    'num_val_images': 8}}
    flags = evaluate.settings(run, evaluate.parse_args(['run', '--num-val-images', 'all']))
    assert (flags.gpus, flags.num_workers, flags.num_val_images) == ([], 0, None)
    assert (flags.dataset, flags.dataset_root) == ('synthetic', '/data/run')
    flags = evaluate.settings(run, evaluate.parse_args(
        ['run', '--gpus', '1', '--num-workers', '2', '--dataset-root', '/data/new']))
    assert (flags.gpus, flags.num_workers, flags.num_val_images) == ([1], 2, 8)
    assert flags.dataset_root == '/data/new'


def test_check_ground_truth_refuses_only_images_without_any_of_the_classes(caplog):
    flags = argparse.Namespace(num_val_images=8, dataset='voc', dataset_root='/data/voc')
    logger = logging.getLogger('test_evaluate')
    with pytest.raises(SystemExit, match=r"the 8 images of --dataset voc at /data/voc hold no "
                                         r"object of the run's classes \(disc, square, "):
        evaluate.check_ground_truth(dict.fromkeys(CLASSES + ['mAP']), CLASSES, flags, logger)
    # one class present: the others are named in a warning
    with caplog.at_level(logging.WARNING, logger='test_evaluate'):
        evaluate.check_ground_truth({'disc': 0.5, 'square': None, 'triangle': None,
                                     'mAP': 0.5}, CLASSES, flags, logger)
    assert caplog.messages == ['no object of square, triangle in these images: their AP is n/a']


class FakeMetric(object):
    """What precision_curves reads of GluonCV's VOC metric: per-label recall and precision
    of the detections in descending score order (None: no ground truth), and the labels
    seen (``_n_pos``'s keys)."""

    def __init__(self, recalls, precisions):
        self._recalls, self._precisions = recalls, precisions
        self._n_pos = dict.fromkeys(range(len(recalls)), 1)

    def _recall_prec(self):
        return self._recalls, self._precisions


def test_precision_curves_hand_checked():
    # label 0: 4 ground truths; detections hit, hit, miss, hit (precision 1, 1, 2/3, 3/4)
    # label 1: ground truths but no detection; label 2: none (and never seen, list too short)
    rec = np.array([0.25, 0.5, 0.5, 0.75])
    prec = np.array([1., 1., 2. / 3, 0.75])
    curves = evaluation.precision_curves(FakeMetric([rec, np.array([])], [prec, np.array([])]),
                                     CLASSES)
    levels = evaluation.RECALL_LEVELS
    expected = np.where(levels <= 0.5, 1., np.where(levels <= 0.75, 0.75, 0.))
    assert_allclose(curves['disc'], expected)
    assert curves['square'] == [0.] * 101 and curves['triangle'] is None
    # VOC07's AP is the mean at recall 0, 0.1, ..., 1: (6 x 1 + 2 x 0.75) / 11
    assert np.mean(curves['disc'][::10]) == pytest.approx(7.5 / 11)


def _voc_metric(pred_labels, gt_labels):
    """GluonCV's VOC07 metric after one image: a box per label (-1: padding), each
    detection on its own ground truth's box."""
    from gluoncv.utils.metrics.voc_detection import VOC07MApMetric
    metric = VOC07MApMetric(iou_thresh=0.5, class_names=CLASSES)
    boxes = np.array([[[10., 10., 50., 50.]] * len(pred_labels)], 'float32')
    metric.update(boxes, np.array([pred_labels], 'float32'), np.ones((1, len(pred_labels))),
                  boxes[:, :len(gt_labels)], np.array([gt_labels], 'float32'))
    return metric


@pytest.mark.parametrize('pred_labels', [[-1], [0, 2]])
def test_images_without_objects_give_no_ap_and_no_warning(pred_labels):
    # GluonCV's metric raises ValueError when it saw neither a detection nor an object,
    # and warns "Mean of empty slice" for detections without objects
    import warnings
    metric = _voc_metric(pred_labels, [-1])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        aps = evaluation.average_precisions(metric)
        curves = evaluation.precision_curves(metric, CLASSES)
    assert aps == {'disc': None, 'square': None, 'triangle': None, 'mAP': None}
    assert curves == {'disc': None, 'square': None, 'triangle': None}


def test_one_class_found_others_missing():
    aps = evaluation.average_precisions(_voc_metric([1], [1]))
    assert aps == {'disc': None, 'square': pytest.approx(1.), 'triangle': None,
                   'mAP': pytest.approx(1.)}
