"""The recipes' bookkeeping, module by module: what a run reports (VOC and COCO AP, the
samplers' statistics, per-epoch losses, the final summary), the draws each epoch reads,
checkpoint versions, resumed runs' seeds and parameters shared between devices. Each test
here once let a deliberately broken version of its module pass the rest of the suite."""
import json
import os
import pickle
import random
import sys
import types
from argparse import Namespace

import mxnet as mx
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'recipes'))

import checkpoint  # noqa: E402  pylint: disable=wrong-import-position
import coco_eval  # noqa: E402  pylint: disable=wrong-import-position
import evaluation  # noqa: E402  pylint: disable=wrong-import-position
import loaders  # noqa: E402  pylint: disable=wrong-import-position
import report  # noqa: E402  pylint: disable=wrong-import-position
import selection_stats  # noqa: E402  pylint: disable=wrong-import-position
# the COCO layout fixture and helpers of the real-layout tests
from test_real_layouts import (PerfectDetector, annotation, coco, feed,  # noqa: E402,F401
                               ground_truth)

CLASSES = ['disc', 'square', 'triangle']


# --------------------------------------------------------------------- evaluation.py

class FixedNet(object):
    """A 'detector' returning the same detections (label, score, x1, y1, x2, y2) per image."""

    def __init__(self, rows):
        self._rows = np.array(rows, 'float32')

    def hybridize(self):
        pass

    def __call__(self, image):
        rows = mx.nd.array(self._rows).expand_dims(0)
        return rows[:, :, :1], rows[:, :, 1:2], rows[:, :, 2:]


def one_image_loader(truth, size=100):
    """One batch of one (1, 3, size, size) image, its label rows (x1, y1, x2, y2, cls,
    difficult) and scale 1."""
    return [([mx.nd.zeros((1, 3, size, size))], [mx.nd.array([truth])], [mx.nd.ones((1,))])]


def mean_ap(rows, truth):
    metric = evaluation.detection_metric(FixedNet(rows), one_image_loader(truth), [mx.cpu()],
                                         CLASSES)
    return evaluation.average_precisions(metric)


def test_difficult_objects_are_not_counted_missed():
    # VOC: a missed difficult object is neither a miss nor a hit
    aps = mean_ap([[0, 0.9, 10, 10, 40, 40]],
                  [[10, 10, 40, 40, 0, 0], [50, 50, 90, 90, 0, 1]])
    assert aps['disc'] == pytest.approx(1.0)


def test_detections_leaving_the_image_are_clipped_before_matching():
    # the box hangs out of the 100 x 100 image; clipped it is the object's box
    aps = mean_ap([[1, 0.9, 50, 0, 300, 99]], [[50, 0, 99, 99, 1, 0]])
    assert aps['square'] == pytest.approx(1.0)


def test_a_second_evaluation_scores_only_its_own_coco_detections(coco):  # noqa: F811
    from gluoncv.data import COCODetection
    from gluoncv.data.transforms.presets.rcnn import FasterRCNNDefaultValTransform
    val = COCODetection(coco, splits='instances_val2017', skip_empty=False)
    loader = loaders.val_loader(val, FasterRCNNDefaultValTransform(96, 160), 1, 0)
    metric = coco_eval.COCOMetric(annotation(coco))
    for _ in range(2):                                   # two epochs' evaluations
        result = evaluation.evaluate(PerfectDetector(loader), loader, [mx.cpu()],
                                     list(val.classes), metric)
        assert result['coco']['AP'] == 1.0


# ---------------------------------------------------------------------- coco_eval.py

def test_coco_metric_reset_forgets_the_detections(coco):  # noqa: F811
    metric = coco_eval.COCOMetric(annotation(coco))
    feed(metric, ground_truth(coco))
    metric.reset()
    feed(metric, ground_truth(coco))
    assert metric.get()['AP'] == 1.0


def test_coco_metric_follows_image_ids_not_file_order(coco, tmp_path):  # noqa: F811
    # val2017's JSON does not list its images by id; COCODetection reads them sorted by id
    with open(annotation(coco)) as f:
        data = json.load(f)
    data['images'] = data['images'][::-1]
    path = str(tmp_path / 'instances_val2017.json')
    with open(path, 'w') as f:
        json.dump(data, f)
    metric = coco_eval.COCOMetric(path)
    feed(metric, ground_truth(coco))
    assert metric.get()['AP'] == 1.0


# ----------------------------------------------------------------- selection_stats.py

def hand_checked_stats():
    """One image: 2 positives, 3 negatives, 1 ignored of 6 slots; the negative at row 4
    repeats row 3's box (a duplicate). Ground truth: one box [0, 0, 10, 10] and one padding
    row."""
    samples = np.array([[1, 1, -1, -1, -1, 0]], 'float32')
    boxes = np.array([[[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 10, 5],
                       [20, 20, 30, 30], [20, 20, 30, 30], [0, 0, 1, 1]]], 'float32')
    gt = np.array([[[0, 0, 10, 10], [-1, -1, -1, -1]]], 'float32')
    stats = selection_stats.SelectionStats()
    stats.update(samples, boxes, gt)
    return stats


def test_merged_statistics_keep_every_rate():
    # a run's statistics merge its epochs': two equal epochs give the same rates, twice the counts
    one = hand_checked_stats().summary()
    merged = selection_stats.SelectionStats()
    merged.merge(hand_checked_stats())
    merged.merge(hand_checked_stats())
    two = merged.summary()
    assert two['duplicate_rate'] == one['duplicate_rate'] == 1 / 5.
    assert two['negative_iou_mean'] == pytest.approx(one['negative_iou_mean'])
    assert two['negative_iou_histogram']['counts'] == [
        2 * c for c in one['negative_iou_histogram']['counts']]


def test_merged_mining_statistics_are_means_over_all_iterations():
    first, second = selection_stats.MiningStats(), selection_stats.MiningStats()
    first.update(2., 1.)
    second.update(4., 3.)
    first.merge(second)
    assert first.summary() == {'mined_loss_mean': 3., 'all_loss_mean': 2.}


def test_duplicates_among_positives_count():
    # the same positive box twice (e.g. a ground truth added as a proposal, and again)
    samples = np.array([[1, 1, -1]], 'float32')
    boxes = np.array([[[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]]], 'float32')
    stats = selection_stats.SelectionStats()
    stats.update(samples, boxes, np.array([[[0, 0, 10, 10]]], 'float32'))
    assert stats.summary()['duplicate_rate'] == pytest.approx(1 / 3.)


# ------------------------------------------------------------------------- loaders.py

def test_an_unset_sampler_draws_new_numbers_each_pass():
    sampler = loaders.ShardBatchSampler(11, 1, 3, 0)
    first = sorted(i for batch in sampler for i in batch)
    second = sorted(i for batch in sampler for i in batch)
    assert first == [0, 3, 6] and second == [11, 14, 17]


def test_set_epoch_chooses_that_epochs_draw_numbers():
    # epoch e (1-based) reads draws (e - 1) * length + image: new augmentation every epoch
    sampler = loaders.ShardBatchSampler(11, 1, 3, 1)
    sampler.set_epoch(3)
    assert sorted(i for batch in sampler for i in batch) == [23, 26, 29]
    sampler.set_epoch(1)
    assert sorted(i for batch in sampler for i in batch) == [1, 4, 7]


def test_seeded_draws_leave_pythons_generator_alone_and_seed_it_per_draw():
    class Draw(object):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return i, random.random()

    draws = loaders.SeededDraws(Draw(), seed=0)
    random.seed(1)
    a = [draws[k] for k in range(4)]
    after = random.random()
    random.seed(2)
    b = [draws[k] for k in range(4)]
    random.seed(1)
    assert random.random() == after                     # the caller's stream untouched
    assert a == b                                       # augmentation depends on the draw only


# -------------------------------------------------------------------------- report.py

def test_epoch_losses_are_means_over_that_epoch_and_after_a_resume():
    log = report.LossLog(['a'])
    for value in (1., 3.):
        log.add({'a': value})
    assert log.end_epoch() == {'a': 2.}
    for value in (10., 20.):
        log.add({'a': value})
    assert log.end_epoch() == {'a': 15.}
    resumed = report.LossLog(['a'])
    resumed.resume({'a': [1., 3.]})
    for value in (10., 20.):
        resumed.add({'a': value})
    assert resumed.end_epoch() == {'a': 15.}


def test_running_loss_is_over_the_last_iterations():
    log = report.LossLog(['a'])
    for value in range(30):
        log.add({'a': value})
    assert log.running(window=10) == {'a': 24.5}


class Stats(object):
    def __init__(self, images):
        self.images = images

    def merge(self, other):
        self.images += other.images

    def summary(self):
        return {'images': self.images}


def two_epoch_report():
    import logging
    run = report.RunReport('train_x', Namespace(seed=0), CLASSES,
                           types.SimpleNamespace(rank=0, num_workers=1), ['a'])
    for epoch, ap in ((1, 0.1), (2, 0.3)):
        record = {'epoch': epoch, 'iterations': 2, 'seconds': 2., 'seconds_per_iteration': 1.,
                  'losses': {'a': 1.}, 'map': {'mAP': ap}, 'coco': {'AP': ap}}
        run.add_epoch(record, {'stage': Stats(4)}, logging.getLogger('bookkeeping'))
    return run.summary({'params': 'x.params'}, 10.)


def test_the_final_map_is_the_last_evaluations():
    final = two_epoch_report()
    assert final['mean_ap'] == 0.3 and final['map'] == {'mAP': 0.3}
    assert final['coco'] == {'AP': 0.3}


def test_the_final_sampler_statistics_cover_every_epoch():
    assert two_epoch_report()['sampler'] == {'stage': {'images': 8}}


def test_the_final_seconds_per_iteration_divide_by_iterations():
    final = two_epoch_report()
    assert final['iterations'] == 4 and final['seconds_per_iteration'] == 1.


# ---------------------------------------------------------------------- checkpoint.py

def test_a_checkpoint_of_another_version_is_refused(tmp_path):
    path = str(tmp_path / 'old.ckpt')
    with open(path, 'wb') as f:
        pickle.dump({'version': checkpoint.VERSION - 1, 'params': b'', 'states': None}, f)
    with pytest.raises(SystemExit, match='not a checkpoint of this version'):
        checkpoint.load(path)


# ------------------------------------------------------------------------ training.py

def resumed_draws(monkeypatch, epoch):
    """mx.random's first draws after Run.resume from a checkpoint written after ``epoch``."""
    import logging
    import training
    monkeypatch.setattr(training.checkpoint, 'restore', lambda *args: True)
    saved = {'report': None, 'numpy': np.random.get_state(), 'python': random.getstate(),
             'epoch': epoch, 'seconds': 0., 'finished': False}
    run = types.SimpleNamespace(
        saved=saved, args=Namespace(seed=5, epochs=4), dist=types.SimpleNamespace(kv=None, rank=0),
        ctx=[mx.cpu()], report=types.SimpleNamespace(restore=lambda *args: None, iterations=0),
        logger=logging.getLogger('bookkeeping'), paths={'ckpt': 'x.ckpt'}, start=0.)
    assert training.Run.resume(run, None, None, dict) == epoch + 1
    return mx.nd.random.uniform(shape=8).asnumpy()


def test_a_resumed_runs_mx_random_depends_on_the_epoch(monkeypatch):
    # MXNet cannot save mx.random's state: a resumed run reseeds it from (seed, epoch), so
    # runs resumed at different epochs do not repeat the same draws
    assert not np.array_equal(resumed_draws(monkeypatch, 1), resumed_draws(monkeypatch, 2))


# ------------------------------------------------------------------------ parallel.py

def test_share_untrained_copies_every_parameter_the_trainer_does_not_update():
    # a frozen (untrained) layer whose copies differ between devices ends equal, like
    # BatchNorm's running statistics
    import parallel
    from mxnet import gluon
    net = gluon.nn.Dense(2, in_units=2, prefix='dense_')
    net.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    net.weight.grad_req = 'null'
    weight = net.weight
    weight._data[1][:] = 7.                         # pylint: disable=protected-access
    parallel.share_untrained(net, {'dense_bias': net.bias}, parallel.Distributed('device'))
    first, second = [weight.data(c).asnumpy() for c in (mx.cpu(0), mx.cpu(1))]
    np.testing.assert_array_equal(first, second)
    assert not (first == 7.).all()
