"""The Faster R-CNN recipe end to end on a few synthetic images, and its shared helpers."""
import argparse
import os
import sys
import types

import mxnet as mx
import numpy as np
import pytest
from numpy.testing import assert_allclose

from gluonmine.data import SyntheticVOCDetection

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'recipes'))

import arguments  # noqa: E402  pylint: disable=wrong-import-position
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
                                   ['--momentum', '-0.1'], ['--momentum', '1'], ['--wd=-1e-4']])
def test_optimizer_settings_that_cannot_train_are_refused(flags, capsys):
    # before: a negative --wd or a momentum above 1 trained in silence; --lr -1 failed
    # inside MXNet's scheduler
    with pytest.raises(SystemExit):
        train_faster_rcnn.parse_args(flags)
    assert 'need --lr > 0, 0 <= --momentum < 1 and --wd >= 0' in capsys.readouterr().err


def test_gpus_this_mxnet_cannot_see_exit_clearly(monkeypatch):
    # before: MXNet's "GPU is not enabled" from deep inside the first parameter copy
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


def test_short_is_the_nets_last_short_side():
    assert train_faster_rcnn.test_short(types.SimpleNamespace(short=(96, 112, 128))) == 128
    assert train_faster_rcnn.test_short(types.SimpleNamespace(short=128)) == 128


def test_gluoncvs_rpn_transform_gives_a_pyramid_targets_a_level():
    # --rpn-sampler gluoncv on tiny_fpn: GluonCV's transform in its multi-stage mode, RPN
    # targets for each of the five levels of a 128 x 160 image (strides 4 to 64)
    args = train_faster_rcnn.parse_args(['--network', 'tiny_fpn', '--rpn-sampler', 'gluoncv',
                                         '--rcnn-sampler', 'gluoncv'])
    net = train_faster_rcnn.build_net(args, ['a', 'b'], [mx.cpu()])
    samplers = train_faster_rcnn.build_sampler(args, net)
    image = mx.nd.zeros((128, 160, 3), dtype='uint8')
    out = samplers.transform(image, np.array([[10, 10, 60, 80, 0, 0]], 'float32'))
    assert samplers.generator is None
    assert [level.shape for level in out[2]] == [(32, 40, 3), (16, 20, 3), (8, 10, 3),
                                                 (4, 5, 3), (2, 3, 3)]


def rcnn_outputs():
    """A stand-in for the twelve outputs of GluonCV's FasterRCNN in training, one image, and
    RPN targets. RPN: 4 anchors, logits 0; anchor 0 positive, 1 negative, 2 and 3 ignored;
    anchor 0's box off by 1 in x. Head: 2 RoIs, logits 0 over 3 classes; RoI 0 of class 1, RoI
    1 ignored; RoI 0's box off by 0.5 in x."""
    nd = mx.nd
    rpn_box, box_pred = nd.zeros((1, 4, 4)), nd.zeros((1, 2, 2, 4))
    rpn_box[0, 0, 0], box_pred[0, 0, 0, 0] = 1, 0.5
    rpn_mask, box_mask = nd.zeros((1, 4, 4)), nd.zeros((1, 2, 2, 4))
    rpn_mask[0, 0], box_mask[0, 0, 0] = 1, 1
    outputs = [nd.zeros((1, 2, 3)), box_pred, nd.zeros((1, 2, 4)), nd.array([[1, -1]]), None,
               nd.zeros((1, 4, 1)), rpn_box, None, nd.array([[1, -1]]), nd.zeros((1, 2, 2, 4)),
               box_mask, None]
    return outputs, (nd.array([[1, 0, -1, -1]]), nd.zeros((1, 4, 4)), rpn_mask)


# GluonCV's normalisation: means over the labelled anchors (2) and RoIs (1); a sigmoid of
# 0 costs log 2, a softmax over 3 equal logits log 3; Huber (rho 1/9 for the RPN, 1 for the
# head): 1 - 0.5 / 9 for the RPN's error 1, 0.5 * 0.5 ** 2 for the head's 0.5
RCNN_LOSSES = {'rpn_cls': np.log(2), 'rpn_box': (1 - 0.5 / 9) / 2, 'rcnn_cls': np.log(3),
               'rcnn_box': 0.125}


def test_faster_rcnn_losses_hand_checked():
    losses = train_faster_rcnn.faster_rcnn_losses(*rcnn_outputs())
    assert {name: losses[name].asscalar() for name in LOSSES} == pytest.approx(
        dict(RCNN_LOSSES, total=sum(RCNN_LOSSES.values())), rel=1e-5)


def test_a_step_divides_the_gradients_by_the_global_batch():
    # a stand-in net giving rcnn_outputs(); one worker of two, --batch-size 2: the update
    # divides by the 4 images of the global batch
    outputs, rpn_targets = rcnn_outputs()
    weight = mx.nd.ones((1,))
    weight.attach_grad()

    class Net(object):
        target_generator = mx.gluon.nn.HybridSequential()

        def __call__(self, data, gt_box, gt_label):
            return [x * weight if x is not None else x for x in outputs]

    class Trainer(object):
        steps = []

        def step(self, size):
            self.steps.append(size)
    args = train_faster_rcnn.parse_args([])
    samplers = train_faster_rcnn.Samplers(None, None)
    step = train_faster_rcnn.build_step(args, Net(), samplers, Trainer(), [mx.cpu()],
                                        types.SimpleNamespace(num_workers=2))
    batch = (mx.nd.zeros((1, 3, 8, 8)), mx.nd.array([[[0, 0, 4, 4, 0, 0]]])) + rpn_targets
    out, = step.run(batch)
    assert Trainer.steps == [4] and out.mining is None
    assert step.losses([out, out]) == pytest.approx(
        dict(RCNN_LOSSES, total=sum(RCNN_LOSSES.values())), rel=1e-5)


def test_iteration_losses_are_means_over_images_and_devices():
    def device(*values):
        return train_faster_rcnn.StepOutput(
            {name: mx.nd.array(values) for name in LOSSES}, *[None] * 5)
    assert train_faster_rcnn.record_losses([device(1, 3), device(6)]) == {
        name: 4. for name in LOSSES}


def test_a_gluonmine_without_the_named_piece_exits_clearly():
    with pytest.raises(SystemExit, match='--rcnn-sampler random needs gluonmine.rcnn.nothing'):
        train_faster_rcnn._require('--rcnn-sampler random', 'gluonmine.rcnn', 'nothing')


def test_device_target_batches_pad_labels_with_minus_one(voc_root):
    # --device-targets batches labels itself: an image with fewer objects gets rows of -1
    # (no object), never rows of 0 (a class-0 box at the origin)
    args = train_faster_rcnn.parse_args(['--device-targets'])
    net = train_faster_rcnn.build_net(args, list(SyntheticVOCDetection.CLASSES), [mx.cpu()])
    train_set = SyntheticVOCDetection(voc_root)
    counts = [len(train_set[i][1]) for i in range(2)]
    assert counts == [3, 2]
    images = mx.gluon.data.SimpleDataset([train_set[i] for i in range(2)])
    train, _ = train_faster_rcnn.build_dataloader(
        args, net, train_faster_rcnn.build_sampler(args, net), images, images,
        types.SimpleNamespace(num_workers=1, rank=0), [mx.cpu()])
    _, labels = next(iter(train))
    labels = labels.asnumpy()                                           # (2, 3, 6)
    padding = (labels == -1).all(axis=-1)                               # (2, 3)
    assert sorted(padding.sum(axis=1).tolist()) == [0, 1]
    assert (labels[:, :, 2][~padding] > 0).all()                        # real boxes only


@pytest.mark.parametrize('flags', [
    ['--epochs', '0'], ['--log-interval', '0'], ['--val-interval', '0'], ['--max-iters', '0'],
    ['--num-train-images', '0'], ['--num-val-images', '0'], ['--num-workers', '-1'],
    ['--warmup-iters', '-1'], ['--batch-size', '3', '--gpus', '0', '1'],
    ['--dataset', 'voc', '--train-splits', '07:train']])
def test_common_flags_out_of_range_are_refused(flags):
    with pytest.raises(SystemExit):
        train_faster_rcnn.parse_args(flags)


def test_common_flags_at_their_bounds_are_accepted():
    args = train_faster_rcnn.parse_args(['--wd', '0', '--momentum', '0', '--warmup-iters', '0',
                                         '--dataset', 'voc', '--train-splits', '2012:train'])
    assert (args.wd, args.momentum, args.warmup_iters) == (0, 0, 0)
    assert args.train_splits == [(2012, 'train')]


def test_an_output_prefix_equal_to_the_runs_is_refused_however_spelled():
    with pytest.raises(SystemExit):
        arguments.check_output(argparse.ArgumentParser(), './runs/a', 'runs/a')
    arguments.check_output(argparse.ArgumentParser(), 'runs/b', 'runs/a')
