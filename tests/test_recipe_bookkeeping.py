"""The recipes' bookkeeping, module by module: what a run reports (VOC and COCO AP, the
samplers' statistics, per-epoch losses, the final summary), the draws each epoch reads,
checkpoint versions, resumed runs' seeds and parameters shared between devices. Each test
here once let a deliberately broken version of its module pass the rest of the suite."""
import json
import logging
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


def test_evaluation_runs_the_net_in_predict_mode():
    # BatchNorm and dropout must not train on the validation images
    modes = []

    class ModeNet(FixedNet):
        def __call__(self, image):
            modes.append(mx.autograd.is_training())
            return super(ModeNet, self).__call__(image)

    truth = [[10, 10, 40, 40, 0, 0]]
    evaluation.detection_metric(ModeNet([[0, 0.9, 10, 10, 40, 40]]), one_image_loader(truth),
                                [mx.cpu()], CLASSES)
    assert modes == [False]


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


def test_a_runs_coco_metric_expands_its_root_and_takes_n_images(coco, monkeypatch):  # noqa: F811
    # --dataset-root ~/NAME as a shell leaves it unexpanded; --num-val-images 3: 3 images
    monkeypatch.setenv('HOME', os.path.dirname(coco))
    args = Namespace(dataset='coco', dataset_root=os.path.join('~', os.path.basename(coco)))
    metric = coco_eval.coco_metric(args, 3)
    truth = ground_truth(coco)
    feed(metric, truth[:3])
    assert metric.get()['AP'] == 1.0
    with pytest.raises(ValueError, match='more images than the 3'):
        feed(metric, truth[3:4])
    assert coco_eval.coco_metric(Namespace(dataset='voc', dataset_root=coco), 3) is None


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


def test_duplicates_without_negatives_are_reported():
    # an image whose labelled RoIs are two copies of one positive: no negative to histogram
    stats = selection_stats.SelectionStats()
    stats.update(np.array([[1, 1, 0]], 'float32'),
                 np.array([[[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 9, 9]]], 'float32'),
                 np.array([[[0, 0, 10, 10]]], 'float32'))
    summary = stats.summary()
    assert summary['duplicate_rate'] == 0.5
    assert summary['negative_iou_histogram']['counts'] == [0] * 11


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


class Draws(object):
    """``size`` 'images': item i is (i, a number from ``draw``, a generator augmentation
    uses)."""

    def __init__(self, size=3, draw=np.random.rand):
        self.size, self.draw = size, draw

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        return i, self.draw()


def test_seeded_draws_leave_pythons_generator_alone_and_seed_it_per_draw():
    draws = loaders.SeededDraws(Draws(draw=random.random), seed=0)
    random.seed(1)
    a = [draws[k] for k in range(4)]
    after = random.random()
    random.seed(2)
    b = [draws[k] for k in range(4)]
    random.seed(1)
    assert random.random() == after                     # the caller's stream untouched
    assert a == b                                       # augmentation depends on the draw only


def test_a_shard_is_read_in_a_shuffled_order():
    sampler = loaders.ShardBatchSampler(20, 1)
    order = [i for batch in sampler for i in batch]
    assert sorted(order) == list(range(20)) and order != sorted(order)


def test_augmentation_follows_the_runs_seed():
    assert loaders.SeededDraws(Draws(), 0)[0] != loaders.SeededDraws(Draws(), 1)[0]


def test_a_workers_train_loader_reads_its_shard_with_the_runs_seed():
    # worker 1 of 2 over 6 images: images 1, 3, 5, augmented as the run's seed 3 draws them
    loader = loaders.train_loader(Draws(6), 1, list, 0,
                                  types.SimpleNamespace(rank=1, num_workers=2), 3)
    items = sorted(item for batch in loader for item in batch)
    assert [i for i, _ in items] == [1, 3, 5]
    assert items == sorted(loaders.SeededDraws(Draws(6), 3)[k] for k in (1, 3, 5))


def test_evaluation_needs_only_the_coco_validation_split(coco, tmp_path):  # noqa: F811
    # evaluate.py reads a run's validation images alone: train2017 need not be there
    root = tmp_path / 'val_only'
    (root / 'annotations').mkdir(parents=True)
    os.symlink(os.path.join(coco, 'val2017'), str(root / 'val2017'))
    os.symlink(annotation(coco), str(root / 'annotations' / 'instances_val2017.json'))
    train, val, _ = loaders.build_datasets(Namespace(
        dataset='coco', dataset_root=str(root), num_train_images=4, num_val_images=None),
        train=False)
    assert train is None and len(val) == 6


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


def test_a_workers_metrics_and_files_name_its_rank(tmp_path):
    # worker 0 of 2 writes PREFIX-worker0.*; a one-worker run writes PREFIX.*
    prefix = str(tmp_path / 'runs' / 'x')
    paths = report.output_paths(prefix, types.SimpleNamespace(rank=0, num_workers=2))
    assert paths == {ext: prefix + '-worker0.' + ext
                     for ext in ('params', 'json', 'png', 'log', 'ckpt')}
    alone = report.output_paths(prefix, types.SimpleNamespace(rank=0, num_workers=1))
    assert alone['ckpt'] == prefix + '.ckpt' and os.path.isdir(str(tmp_path / 'runs'))
    metrics = report.RunReport('train_x', Namespace(seed=0), CLASSES,
                               types.SimpleNamespace(rank=1, num_workers=2), ['a']).metrics
    assert (metrics['rank'], metrics['num_workers']) == (1, 2)


def test_a_resumed_report_keeps_its_loss_curve_growing():
    run = report.RunReport('train_x', Namespace(seed=0), CLASSES,
                           types.SimpleNamespace(rank=0, num_workers=1), ['a'])
    state = {'metrics': dict(run.metrics, loss_curve={'a': [1., 3.]}), 'stats': {}}
    run.restore(state, dict, Namespace(seed=0, resume=True))
    run.losses.add({'a': 5.})
    assert run.metrics['loss_curve'] == {'a': [1., 3., 5.]}
    assert run.metrics['args'] == {'seed': 0, 'resume': True}


def test_the_final_record_of_a_run_without_coco_has_no_coco():
    run = report.RunReport('train_x', Namespace(seed=0), CLASSES,
                           types.SimpleNamespace(rank=0, num_workers=1), ['a'])
    record = {'epoch': 1, 'iterations': 1, 'seconds': 1., 'seconds_per_iteration': 1.,
              'losses': {'a': 1.}, 'map': None}
    run.add_epoch(record, {}, logging.getLogger('bookkeeping'))
    final = run.summary({'params': 'x.params'}, 1.)
    assert 'coco' not in final and final['map'] is None and final['mean_ap'] is None


def test_a_new_runs_log_starts_empty_and_a_resumed_one_appends(tmp_path):
    first, second = str(tmp_path / 'a.log'), str(tmp_path / 'b.log')
    report.setup_logger(first).info('first run')
    report.setup_logger(second).info('second run')              # another run, same process
    report.setup_logger(first).info('first run again')
    logger = report.setup_logger(second, append=True)
    logger.info('second run resumed')
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    with open(first) as f:
        assert [line.split(' ', 1)[1] for line in f.read().splitlines()] == ['first run again']
    with open(second) as f:
        assert [line.split(' ', 1)[1] for line in f.read().splitlines()] == [
            'second run', 'second run resumed']


def test_a_run_is_read_only_with_its_parameters_and_recipe(tmp_path):
    prefix = str(tmp_path / 'run')
    with open(prefix + '.json', 'w') as f:
        json.dump({'recipe': 'train_ssd'}, f)
    with pytest.raises(SystemExit, match='no training run there'):
        report.read_run(prefix, ('train_ssd',))                 # no PREFIX.params
    with open(prefix + '.params', 'wb'):
        pass
    assert report.read_run(prefix, ('train_ssd',)) == {'recipe': 'train_ssd'}
    with pytest.raises(SystemExit, match="written by 'train_ssd', not by train_faster_rcnn"):
        report.read_run(prefix, ('train_faster_rcnn',))


def test_run_flags_are_defaults_then_the_runs_then_the_overrides_given():
    # None is an override not given; a VOC-format run is read with its own classes
    run = {'args': {'dataset': 'voc', 'seed': 3, 'gpus': [1], 'classes': None},
           'classes': ['cat', 'dog']}
    flags = report.run_flags(run, {'seed': 0, 'lr': 0.1, 'gpus': []}, gpus=None, seed=7)
    assert flags == {'dataset': 'voc', 'seed': 7, 'lr': 0.1, 'gpus': [1],
                     'classes': ['cat', 'dog']}


# ---------------------------------------------------------------------- checkpoint.py

def test_a_checkpoint_of_another_version_is_refused(tmp_path):
    path = str(tmp_path / 'old.ckpt')
    with open(path, 'wb') as f:
        pickle.dump({'version': checkpoint.VERSION - 1, 'params': b'', 'states': None}, f)
    with pytest.raises(SystemExit, match='not a checkpoint of this version'):
        checkpoint.load(path)


def test_an_empty_checkpoint_is_refused_clearly(tmp_path):
    # a copy that failed leaves no bytes: pickle raises EOFError, not UnpicklingError
    path = str(tmp_path / 'empty.ckpt')
    open(path, 'wb').close()
    with pytest.raises(SystemExit, match='cannot read the checkpoint'):
        checkpoint.load(path)


# ------------------------------------------------------------------------ training.py

def resumed_run(monkeypatch, epoch, rank=0, restored=True, **saved):
    """A stand-in for Run after Run.resume from a checkpoint written after ``epoch`` (6
    iterations, 40 s; ``saved`` overrides its fields) on worker ``rank``: (run, trainer, the
    first epoch to train)."""
    import training
    monkeypatch.setattr(training.checkpoint, 'restore', lambda *args: restored)
    saved = dict({'report': None, 'numpy': np.random.get_state(), 'python': random.getstate(),
                  'epoch': epoch, 'seconds': 40., 'finished': False}, **saved)
    run = types.SimpleNamespace(
        saved=saved, args=Namespace(seed=5, epochs=4), ctx=[mx.cpu()],
        dist=types.SimpleNamespace(kv=None if restored else object(), rank=rank),
        report=types.SimpleNamespace(restore=lambda *args: None, iterations=6),
        logger=logging.getLogger('bookkeeping'), paths={'ckpt': 'x.ckpt'}, start=100.)
    trainer = types.SimpleNamespace(optimizer=mx.optimizer.SGD())
    return run, trainer, training.Run.resume(run, None, trainer, dict)


def resumed_draws(monkeypatch, epoch, rank=0):
    """mx.random's first draws after Run.resume from a checkpoint written after ``epoch``."""
    assert resumed_run(monkeypatch, epoch, rank)[2] == epoch + 1
    return mx.nd.random.uniform(shape=8).asnumpy()


def test_a_resumed_runs_mx_random_depends_on_the_epoch(monkeypatch):
    # MXNet cannot save mx.random's state: a resumed run reseeds it from (seed, epoch), so
    # runs resumed at different epochs do not repeat the same draws
    assert not np.array_equal(resumed_draws(monkeypatch, 1), resumed_draws(monkeypatch, 2))


def test_resumed_workers_draw_their_own_samples(monkeypatch):
    assert not np.array_equal(resumed_draws(monkeypatch, 1), resumed_draws(monkeypatch, 1, 1))


def test_a_resume_restores_the_generators_the_clock_and_a_dist_update_count(monkeypatch):
    # with a dist kvstore no trainer states are restored: the update count (the learning
    # rate's place in its schedule) is set to the run's iterations, for every parameter
    run, trainer, first = resumed_run(monkeypatch, 2, restored=False,
                                      numpy=np.random.RandomState(9).get_state(),
                                      python=random.Random(9).getstate())
    assert first == 3 and run.start == 60.                  # 40 s of the run before
    optimizer = trainer.optimizer
    assert optimizer.begin_num_update == optimizer.num_update == 6
    assert np.random.rand() == np.random.RandomState(9).rand()
    assert random.random() == random.Random(9).random()
    # a finished run resumes past its last epoch
    assert resumed_run(monkeypatch, 2, finished=True)[2] == 5


def test_resume_accepts_only_flags_that_do_not_change_what_is_trained():
    import training
    saved = {'recipe': 'train_x', 'args': {
        'lr': 0.1, 'resume': False, 'num_workers': 0, 'log_interval': 50, 'val_interval': 1,
        'gpus': [], 'dataset_root': 'a', 'save_prefix': 'runs/x'}}
    args = Namespace(lr=0.1, resume=True, num_workers=2, log_interval=5, val_interval=3,
                     gpus=[0], dataset_root='b', save_prefix='runs/y')
    training.check_resumable('train_x', saved, args)
    with pytest.raises(SystemExit, match=r'these differ: --lr 0\.2 \(checkpoint: 0\.1\)$'):
        training.check_resumable('train_x', saved, Namespace(**dict(vars(args), lr=0.2)))


def test_an_epoch_stops_at_max_iters_and_averages_over_its_iterations(monkeypatch):
    # a clock reading 0, 1, 1, 4, 4: iterations of 1 s and 3 s, counted until max_iters=2
    import training
    clock = iter([0., 1., 1., 4., 4.])
    monkeypatch.setattr(training, 'time', types.SimpleNamespace(time=lambda: next(clock)))
    step = training.Step(run=lambda batch: batch, losses=lambda value: {'a': value},
                         record=lambda value, seen: seen.append(value))
    seen, log = [], report.LossLog(['a'])
    record = training.train_epoch(step, [1., 3., 5.], seen, log,
                                  Namespace(epochs=2, log_interval=50), 1, 2)
    assert seen == [1., 3.] and record == {'epoch': 1, 'iterations': 2, 'seconds': 4.,
                                           'seconds_per_iteration': 2., 'losses': {'a': 2.},
                                           'map': None}


class Loader(list):
    """Batches of a fake training loader; records the epochs set."""

    def set_epoch(self, epoch):
        self.epochs.append(epoch)


def trained(monkeypatch, epochs, max_iters=None, val_interval=1):
    """Run.train over stand-ins, epochs of 2 iterations: (the epochs' records, the
    ``max_iters`` each epoch got, (epoch, finished) of each save, the epochs set)."""
    import training
    given, saves = [], []

    def train_epoch(step, loader, stats, log, args, epoch, max_iters):
        given.append(max_iters)
        done = min(2, max_iters)
        return {'epoch': epoch, 'iterations': done, 'seconds': 1., 'seconds_per_iteration': 1.,
                'losses': {}, 'map': None}

    monkeypatch.setattr(training, 'train_epoch', train_epoch)
    monkeypatch.setattr(training.parallel, 'share_untrained', lambda *args: None)
    monkeypatch.setattr(training.evaluation, 'evaluate', lambda *args: {'map': {'mAP': 1.}})
    monkeypatch.setattr(report.RunReport, 'finish', lambda *args: None)
    args = Namespace(epochs=epochs, max_iters=max_iters, val_interval=val_interval)
    run = types.SimpleNamespace(
        args=args, dist=types.SimpleNamespace(rank=0, kv=None), saved=None, ctx=[mx.cpu()],
        classes=CLASSES, coco=None, logger=logging.getLogger('bookkeeping'), paths={},
        start=0., save=lambda net, trainer, epoch, finished: saves.append((epoch, finished)),
        report=report.RunReport('train_x', args, CLASSES,
                                types.SimpleNamespace(rank=0, num_workers=1), ['a']))
    run.iterations = lambda data: training.Run.iterations(run, data)
    loader = Loader([None, None])
    loader.epochs = []
    training.Run.train(run, None, {}, None, None, (loader, None), dict, lambda: None)
    return run.report.metrics['epochs'], given, saves, loader.epochs


def test_a_run_evaluates_every_val_interval_epochs_and_after_the_last(monkeypatch):
    records, _, saves, epochs = trained(monkeypatch, 3, val_interval=2)
    assert [r['epoch'] for r in records if r['map']] == [2, 3]
    assert saves == [(1, False), (2, False), (3, True)] and epochs == [1, 2, 3]


def test_max_iters_ends_a_run_inside_an_epoch(monkeypatch):
    # 3 iterations of epochs of 2: epoch 2 trains 1 and is the last, evaluated and finished
    records, given, saves, _ = trained(monkeypatch, 3, max_iters=3, val_interval=5)
    assert given == [3, 1] and [r['iterations'] for r in records] == [2, 1]
    assert [r['epoch'] for r in records if r['map']] == [2]
    assert saves == [(1, False), (2, True)]


# ------------------------------------------------------------------------ parallel.py

def test_the_trainer_follows_the_optimizer_flags():
    # SGD: warm-up from a tenth of --lr, cosine decay to 1% of it, gradients clipped at 5
    import parallel
    from mxnet import gluon
    net = gluon.nn.Dense(1, in_units=1)
    net.initialize()
    args = Namespace(lr=0.1, momentum=0.5, wd=0.01, warmup_iters=10)
    optimizer = parallel.build_trainer(net.collect_params(), args, 100,
                                       parallel.Distributed('device')).optimizer
    assert (optimizer.momentum, optimizer.wd, optimizer.clip_gradient) == (0.5, 0.01, 5.)
    schedule = optimizer.lr_scheduler
    assert schedule(0) == pytest.approx(0.01) and schedule(10) == pytest.approx(0.1)
    assert schedule(100) == pytest.approx(0.001)
    # a warm-up longer than the run ends one update before the run's last
    short = parallel.build_trainer(net.collect_params(), args, 5,
                                   parallel.Distributed('device')).optimizer.lr_scheduler
    assert short(4) == pytest.approx(0.1) and short(5) == pytest.approx(0.001)


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
