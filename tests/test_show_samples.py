"""recipes/show_samples.py: what each Faster R-CNN sampler selects, drawn and counted."""
import json
import os
import shutil
import sys

import mxnet as mx
import numpy as np
import pytest
from gluoncv.data.transforms.presets.rcnn import FasterRCNNDefaultValTransform
from mxnet import autograd
from numpy.testing import assert_array_equal

from gluonmine.data import SyntheticVOCDetection
from gluonmine.models import tiny_faster_rcnn_fpn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'recipes'))

import show_samples  # noqa: E402  pylint: disable=wrong-import-position
import train_faster_rcnn  # noqa: E402  pylint: disable=wrong-import-position


def test_counts_of_every_panel(voc_root, tmp_path):
    output = str(tmp_path / 'samples')
    report = show_samples.main(['--dataset-root', voc_root, '--images', '0', '1', '2',
                                '--output', output])
    with open(output + '.json') as f:
        assert json.load(f) == json.loads(json.dumps(report))
    with open(output + '.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    images = report['images']
    assert sorted(images) == [0, 1, 2]
    for panels in images.values():
        assert list(panels) == list(show_samples.PANELS['train_faster_rcnn'])
        assert panels['gluonmine RPN']['positives'] + panels['gluonmine RPN']['negatives'] == 256
        assert panels['GluonCV RPN']['positives'] + panels['GluonCV RPN']['negatives'] <= 256
        # gluonmine forces a positive anchor for every object; RoIs include the ground truths
        assert panels['gluonmine RPN']['objects_without_positive'] == 0
        assert panels['gluonmine RCNN']['objects_without_positive'] == 0
        for name in ('GluonCV RCNN', 'gluonmine RCNN'):         # 128 RoIs, at most 25% positive
            assert panels[name]['positives'] + panels[name]['negatives'] <= 128
            assert panels[name]['positives'] <= 32 < panels[name]['negatives']
        assert 0 < panels['OHEM RCNN']['positives'] + panels['OHEM RCNN']['negatives'] <= 64
    # GluonCV 0.10's clobbering: small objects left without a positive anchor (recipes/README)
    assert sum(p['GluonCV RPN']['objects_without_positive'] for p in images.values()) >= 2
    again = show_samples.main(['--dataset-root', voc_root, '--images', '0', '1', '2',
                               '--output', str(tmp_path / 'again')])
    assert again == report                                  # seeded


def test_a_trained_run_and_bad_arguments(voc_root, tmp_path):
    prefix = str(tmp_path / 'run')
    train_faster_rcnn.main(['--dataset-root', voc_root, '--num-train-images', '2',
                            '--num-val-images', '1', '--epochs', '1', '--save-prefix', prefix,
                            '--rpn-clobber-positives'])
    report = show_samples.main(['--run', prefix, '--images', '2'])
    assert report['run'] == prefix and list(report['images']) == [2]
    # the run's RPN rule: GluonCV's, so both RPN panels keep the same positives
    panels = report['images'][2]
    assert panels['gluonmine RPN']['positives'] == panels['GluonCV RPN']['positives']
    assert (panels['gluonmine RPN']['objects_without_positive']
            == panels['GluonCV RPN']['objects_without_positive'] > 0)
    assert os.path.getsize(prefix + '-samples.png') > 0
    # the run's params file for the run, the figure's file name for the output prefix
    args = show_samples.parse_args(['--run', prefix + '.params', '--output', 'look.png'])
    assert (args.run, args.output) == (prefix, 'look')
    # a run trained for other classes than its dataset's is refused
    with open(prefix + '.json') as f:
        metrics = json.load(f)
    with open(str(tmp_path / 'other.json'), 'w') as f:
        json.dump(dict(metrics, classes=['a', 'b', 'c']), f)
    shutil.copyfile(prefix + '.params', str(tmp_path / 'other.params'))
    with pytest.raises(SystemExit, match='the run was trained for classes'):
        show_samples.main(['--run', str(tmp_path / 'other'), '--images', '2'])
    with pytest.raises(SystemExit, match='no training run there'):
        show_samples.main(['--run', str(tmp_path / 'missing')])
    with pytest.raises(SystemExit, match='the training set has images 0 to 299'):
        show_samples.main(['--dataset-root', voc_root, '--images', '300'])


def test_ssd_miners_panels(voc_root, tmp_path):
    report = show_samples.main(['--recipe', 'ssd', '--dataset-root', voc_root, '--images', '0',
                                '1', '--output', str(tmp_path / 'ssd')])
    assert report['recipe'] == 'train_ssd' and os.path.getsize(str(tmp_path / 'ssd.png')) > 0
    for panels in report['images'].values():
        assert list(panels) == ['gluoncv', 'gluonmine-hard-negative', 'ohem', 'random']
        positives = {p['positives'] for p in panels.values()}
        assert len(positives) == 1 and positives.pop() > 0       # the targets, not the miner
        for name, numbers in panels.items():                     # 3 negatives a positive
            assert numbers['negatives'] == 3 * numbers['positives'], name
            assert numbers['objects_without_positive'] == 0


def test_a_feature_pyramid_nets_anchors_of_every_level(voc_root):
    # an FPN net gives one anchor array a level; the RPN panels must sample over all of
    # them (before: GluonCV's RPN targets were made for the first level's anchors only,
    # and failed)
    dataset = SyntheticVOCDetection(voc_root, splits=((2007, 'train'),))
    mx.random.seed(0)
    net = tiny_faster_rcnn_fpn(dataset.classes)
    net.initialize()
    image, label, _ = FasterRCNNDefaultValTransform(128, 224)(*dataset[0])
    label = mx.nd.array(label)
    with autograd.train_mode():
        levels = net(image.expand_dims(0), label[:, :4].expand_dims(0),
                     label[:, 4:5].expand_dims(0))[7]
    flags = train_faster_rcnn.parse_args(['--network', 'tiny_fpn'])
    panels = show_samples.faster_rcnn_selections(net, {0: (image, label)}, 0, flags)[0]
    anchors = sum(level.shape[1] for level in levels)                  # every level
    assert len(levels) == 5 and levels[0].shape[1] < anchors
    for name in ('GluonCV RPN', 'gluonmine RPN'):
        boxes, samples = panels[name]
        assert boxes.shape == (anchors, 4) and samples.shape == (anchors,)
        assert 0 < (samples > 0).sum() and (samples != 0).sum() <= 256
    assert (panels['gluonmine RPN'][1] != 0).sum() == 256


def test_counts_leave_padding_rows_out():
    # two objects and a padding row; both positives overlap object 0 best, so object 1 has
    # none; the ignored box (0) on object 1 counts for nothing
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [-1, -1, -1, -1]], 'float32')
    boxes = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [40, 40, 50, 50], [20, 20, 30, 30]],
                     'float32')
    assert show_samples.counts(boxes, np.array([1., 1., -1., 0.]), gt) == {
        'positives': 2, 'negatives': 1, 'objects': 2, 'objects_without_positive': 1}


def test_rpn_panels_follow_the_seed_whatever_numpys_state():
    # 2000 small anchors, one object: GluonCV draws its negatives with NumPy's generator
    rng = np.random.RandomState(0)
    xy = rng.uniform(0, 56, (1, 2000, 2))
    anchors = mx.nd.array(np.concatenate([xy, xy + 8], axis=-1))
    label = mx.nd.array([[10, 10, 30, 30, 0, 0]])
    flags = train_faster_rcnn.parse_args([])
    panels = []
    for state in (1, 2):
        np.random.seed(state)
        panels.append(show_samples.rpn_selections(mx.nd.zeros((3, 64, 64)), label, anchors, 0,
                                                  flags))
    for name in ('GluonCV RPN', 'gluonmine RPN'):
        assert (panels[0][name][1] != 0).sum() == 256, name
        assert_array_equal(panels[0][name][1], panels[1][name][1])
