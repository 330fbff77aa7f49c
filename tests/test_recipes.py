"""The Faster R-CNN recipe end to end on a few synthetic images, and its shared helpers."""
import os
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'recipes'))

import evaluate  # noqa: E402  pylint: disable=wrong-import-position
import loaders  # noqa: E402  pylint: disable=wrong-import-position
import parallel  # noqa: E402  pylint: disable=wrong-import-position
import selection_stats  # noqa: E402  pylint: disable=wrong-import-position
import train_faster_rcnn  # noqa: E402  pylint: disable=wrong-import-position
from conftest import assert_run_outputs  # noqa: E402  pylint: disable=wrong-import-position
from test_recipe_bookkeeping import (  # noqa: E402  pylint: disable=wrong-import-position
    hand_checked_stats)

LOSSES = ['rpn_cls', 'rpn_box', 'rcnn_cls', 'rcnn_box', 'total']
STAGE_KEYS = {'images', 'positives_per_image', 'negatives_per_image', 'fill_rate'}


def run(voc_root, prefix, *flags):
    """A tiny run: 4 training images (2 iterations a batch of 2), 2 validation images."""
    argv = ['--dataset-root', voc_root, '--num-train-images', '4', '--num-val-images', '2',
            '--epochs', '1', '--save-prefix', str(prefix)] + list(flags)
    return train_faster_rcnn.main(argv)


def test_tiny_run_writes_params_metrics_and_plot(voc_root, tmp_path):
    # 2 iterations, one finite value per loss and iteration
    written = assert_run_outputs(tmp_path / 'run', run(voc_root, tmp_path / 'run'), LOSSES, 2)
    final = written['final']
    assert 0 <= final['mean_ap'] <= 1 and final['params'].endswith('run.params')
    assert final['sampler']['mining'] is None                   # no OHEM in this run
    rpn, rcnn = final['sampler']['rpn'], final['sampler']['rcnn']
    assert set(rpn) == STAGE_KEYS
    assert set(rcnn) == STAGE_KEYS | {'duplicate_rate', 'negative_iou_mean',
                                      'negative_iou_histogram'}
    # 2 iterations x 2 images; gluonmine fills the RPN's 256 anchors exactly
    assert rpn['images'] == 4 and rpn['fill_rate'] == 1.0
    assert rpn['positives_per_image'] + rpn['negatives_per_image'] == 256
    histogram = rcnn['negative_iou_histogram']
    assert sum(histogram['counts']) == round(rcnn['negatives_per_image'] * 4)
    assert histogram['counts'][-1] == 0                         # no negative at IoU >= 0.5


def test_same_seed_reproduces_sampler_statistics(voc_root, tmp_path):
    first = run(voc_root, tmp_path / 'a', '--seed', '5')
    second = run(voc_root, tmp_path / 'b', '--seed', '5')
    other = run(voc_root, tmp_path / 'c', '--seed', '6')
    assert first['final']['sampler'] == second['final']['sampler']
    assert first['loss_curve'] == second['loss_curve']
    assert first['loss_curve'] != other['loss_curve']


def test_transform_targets_reproduce_with_dataloader_workers(voc_root, tmp_path):
    # the transform's anchor draws in worker processes are seeded per draw, so they do not
    # depend on which worker makes which image
    flags = ('--num-workers', '2', '--seed', '1')
    first = run(voc_root, tmp_path / 'a', *flags)
    second = run(voc_root, tmp_path / 'b', *flags)
    assert first['loss_curve'] == second['loss_curve']
    assert first['final']['sampler'] == second['final']['sampler']
    other = run(voc_root, tmp_path / 'c', '--num-workers', '2', '--seed', '2')
    assert other['loss_curve']['rpn_cls'] != first['loss_curve']['rpn_cls']


def test_device_targets_reproduce_with_dataloader_workers(voc_root, tmp_path):
    flags = ('--device-targets', '--num-workers', '2', '--seed', '1')
    first = run(voc_root, tmp_path / 'a', *flags)
    second = run(voc_root, tmp_path / 'b', *flags)
    assert first['final']['sampler'] == second['final']['sampler']
    assert first['final']['sampler']['rpn']['fill_rate'] == 1.0


def test_gluoncv_samplers_run_through_the_same_recipe(voc_root, tmp_path):
    metrics = run(voc_root, tmp_path / 'g', '--rpn-sampler', 'gluoncv',
                  '--rcnn-sampler', 'gluoncv', '--max-iters', '1')
    assert metrics['final']['iterations'] == 1
    assert all(np.isfinite(v).all() for v in metrics['loss_curve'].values())


def test_rpn_clobber_positives_turns_low_forced_positives_negative(voc_root, tmp_path):
    # GluonCV's rule in gluonmine's sampler: a best anchor under IoU 0.3 is a negative
    paper = run(voc_root, tmp_path / 'paper')['final']['sampler']['rpn']
    clobber = run(voc_root, tmp_path / 'clobber', '--rpn-clobber-positives')
    rpn = clobber['final']['sampler']['rpn']
    assert rpn['positives_per_image'] < paper['positives_per_image'] and rpn['fill_rate'] == 1.
    assert clobber['args']['rpn_clobber_positives']
    # the synthetic objects' best anchors under IoU 0.3 do not force either
    floor = run(voc_root, tmp_path / 'floor', '--rpn-min-forced-iou', '0.3')
    assert floor['final']['sampler']['rpn']['positives_per_image'] < paper['positives_per_image']
    assert floor['args']['rpn_min_forced_iou'] == 0.3
    for flags in (['--rpn-clobber-positives'], ['--rpn-min-forced-iou', '0.3']):
        with pytest.raises(SystemExit):
            train_faster_rcnn.parse_args(flags + ['--rpn-sampler', 'gluoncv'])
    with pytest.raises(SystemExit):
        train_faster_rcnn.parse_args(['--rpn-min-forced-iou', '1'])


def test_ohem_run_reports_mined_against_all_losses(voc_root, tmp_path):
    metrics = run(voc_root, tmp_path / 'ohem', '--rcnn-sampler', 'ohem')
    sampler = metrics['final']['sampler']
    # OHEM keeps 64 RoIs an image (the paper's 128 per 2 images), hardest first
    assert sampler['rcnn']['positives_per_image'] + sampler['rcnn']['negatives_per_image'] <= 64
    assert sampler['mining']['mined_loss_mean'] > sampler['mining']['all_loss_mean'] > 0
    assert all(np.isfinite(v).all() for v in metrics['loss_curve'].values())


@pytest.mark.parametrize('flags', [(), ('--device-targets', '--rcnn-sampler', 'ohem')],
                         ids=['transform-targets', 'device-targets-ohem'])
def test_a_feature_pyramid_network_trains_through_the_recipe(voc_root, tmp_path, flags):
    # tiny_fpn's anchors come one array a level: the transform's multi-stage targets, the
    # device generator's list input and OHEM's pooling over the levels all run; and a
    # rerun reproduces the losses (with ROIAlign, MXNet's CPU kernel let memory left by
    # earlier arrays into the RCNN head: the losses changed from run to run)
    metrics = run(voc_root, tmp_path / 'fpn', '--network', 'tiny_fpn', *flags)
    assert_run_outputs(tmp_path / 'fpn', metrics, LOSSES, 2)
    rpn = metrics['final']['sampler']['rpn']
    assert rpn['fill_rate'] == 1.0 and rpn['positives_per_image'] > 0
    again = run(voc_root, tmp_path / 'again', '--network', 'tiny_fpn', *flags)
    assert again['loss_curve'] == metrics['loss_curve']


@pytest.mark.parametrize('flags', [(), ('--device-targets',), ('--rcnn-sampler', 'ohem')],
                         ids=['random', 'device-targets', 'ohem'])
def test_a_batch_splits_over_two_devices(voc_root, tmp_path, cpu_devices, flags):
    # one image a device; GluonCV's RCNN target generator, made on first use on the
    # default device only, once failed the first step on the second device
    metrics = run(voc_root, tmp_path / 'two', '--gpus', '0', '1', *flags)
    written = assert_run_outputs(tmp_path / 'two', metrics, LOSSES, 2)
    assert written['final']['sampler']['rpn']['images'] == 4
    # each device's BatchNorm statistics came from its own image: all devices hold the
    # first's when the run evaluates, so the weights saved score what it measured
    assert cpu_devices == [[]]
    single = evaluate.main([str(tmp_path / 'two'), '--output', str(tmp_path / 'one')])
    assert single['map'] == pytest.approx(written['final']['map'])

@pytest.mark.parametrize('flag, module', [('random', 'gluonmine.rcnn'),
                                          ('ohem', 'gluonmine.rcnn_ohem')])
def test_rcnn_sampler_without_its_module_exits_clearly(voc_root, tmp_path, monkeypatch, flag,
                                                       module):
    monkeypatch.setitem(sys.modules, module, None)              # as if it were not installed
    with pytest.raises(SystemExit, match='--rcnn-sampler {} needs {}'.format(flag, module)):
        run(voc_root, tmp_path / flag, '--rcnn-sampler', flag)


def test_flags_have_real_defaults():
    args = train_faster_rcnn.parse_args([])
    assert (args.network, args.rpn_sampler, args.dataset) == ('tiny', 'gluonmine', 'synthetic')
    assert args.gpus == [] and args.kvstore == 'device' and not args.device_targets
    assert '' not in vars(args).values()
    with pytest.raises(SystemExit):
        train_faster_rcnn.parse_args(['--device-targets', '--rpn-sampler', 'gluoncv'])
    with pytest.raises(SystemExit):
        train_faster_rcnn.parse_args(['--batch-size', '0'])


@pytest.mark.parametrize('given, prefix', [('runs/a.params', 'runs/a'), ('runs/a.json', 'runs/a'),
                                           ('runs/a', 'runs/a'), ('runs/a.b', 'runs/a.b')])
def test_save_prefix_given_as_a_file_of_the_run_is_its_prefix(given, prefix):
    # before: --save-prefix runs/a.params wrote runs/a.params.params
    assert train_faster_rcnn.parse_args(['--save-prefix', given]).save_prefix == prefix


@pytest.mark.parametrize('flags', [['--lr', '0'], ['--lr', '-0.02'], ['--momentum', '1.5'],
                                   ['--momentum', '-0.1'], ['--wd=-1e-4']])
def test_optimizer_settings_that_cannot_train_are_refused(flags, capsys):
    # before: a negative --wd or a momentum above 1 trained in silence; --lr -1 failed
    # inside MXNet's scheduler
    with pytest.raises(SystemExit):
        train_faster_rcnn.parse_args(flags)
    assert 'need --lr > 0, 0 <= --momentum < 1 and --wd >= 0' in capsys.readouterr().err


def test_gpus_this_mxnet_cannot_see_exit_clearly(monkeypatch):
    # before: MXNet's "GPU is not enabled" from deep inside the first parameter copy
    import mxnet as mx
    assert parallel.contexts([]) == [mx.cpu()]
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 0)
    with pytest.raises(SystemExit, match='--gpus 0: this MXNet sees 0 GPU.*CPU-only build'):
        parallel.contexts([0])
    monkeypatch.setattr(mx.context, 'num_gpus', lambda: 2)
    assert parallel.contexts([0, 1]) == [mx.gpu(0), mx.gpu(1)]
    for wrong in ([0, 2], [-1]):
        with pytest.raises(SystemExit, match='this MXNet sees 2 GPU'):
            parallel.contexts(wrong)


def test_main_is_short():
    import inspect
    assert len(inspect.getsource(train_faster_rcnn.main).splitlines()) <= 60


def test_selection_stats_hand_checked():
    stats = hand_checked_stats()
    summary = stats.summary()
    assert summary['positives_per_image'] == 2 and summary['negatives_per_image'] == 3
    assert summary['fill_rate'] == 5 / 6.
    assert summary['duplicate_rate'] == 1 / 5.
    # negatives' best IoUs: 0.5 (half of the gt box), 0, 0 -> bins [0, .05) x2 and [.5, 1]
    counts = summary['negative_iou_histogram']['counts']
    assert counts[0] == 2 and counts[-1] == 1 and sum(counts) == 3
    assert_allclose(summary['negative_iou_mean'], 0.5 / 3)
    merged = selection_stats.SelectionStats()
    merged.merge(stats)
    merged.merge(stats)
    assert merged.summary()['images'] == 2 and merged.summary()['fill_rate'] == 5 / 6.


def test_max_iou():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]], 'float32')
    gt = np.array([[0, 0, 10, 10], [-1, -1, -1, -1]], 'float32')
    assert_allclose(selection_stats.max_iou(boxes, gt), [1., 50. / 150., 0.])
    assert_allclose(selection_stats.max_iou(boxes, gt[1:]), [0, 0, 0])   # padding only


def test_shards_are_disjoint_equal_and_reshuffled():
    # 11 images over 3 workers: 3 each (the remainder 2 dropped), batches of 2 -> 1 batch
    shards = [loaders.ShardBatchSampler(11, 1, 3, rank) for rank in range(3)]
    first = [sorted(i for batch in s for i in batch) for s in shards]
    assert first == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    assert [len(s) for s in shards] == [3, 3, 3]
    # the next epoch draws numbers past 11: the same images, as new draws
    assert sorted(i % 11 for batch in shards[0] for i in batch) == [0, 3, 6]
    assert len(loaders.ShardBatchSampler(11, 2, 3, 0)) == 1
    with pytest.raises(SystemExit, match='fewer than --batch-size'):
        loaders.ShardBatchSampler(3, 2, 3, 0)


def test_seeded_draws_do_not_depend_on_the_caller_state():
    class Draw(object):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return i, np.random.rand()

    draws = loaders.SeededDraws(Draw(), seed=0)
    np.random.seed(1)
    a = [draws[k] for k in range(6)]
    after = np.random.rand()
    np.random.seed(2)
    b = [draws[k] for k in range(6)]
    np.random.seed(1)
    assert a == b and np.random.rand() == after                 # caller's stream untouched
    assert [i for i, _ in a] == [0, 1, 2, 0, 1, 2]
    assert a[0][1] != a[3][1]                                   # image 0, next epoch: new draw
