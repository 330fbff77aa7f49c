"""The SSD recipe end to end on a few synthetic images, its miners and its targets."""
import os
import sys
import types

import mxnet as mx
import numpy as np
import pytest
from mxnet import nd
from numpy.testing import assert_allclose, assert_array_equal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'recipes'))

import evaluate  # noqa: E402  pylint: disable=wrong-import-position
import train_ssd  # noqa: E402  pylint: disable=wrong-import-position
from conftest import assert_run_outputs  # noqa: E402  pylint: disable=wrong-import-position

LOSSES = ['cls', 'box', 'total']
MINING_KEYS = {'mined_loss_mean', 'all_loss_mean', 'hardest_share'}


def run(voc_root, prefix, *flags):
    """A tiny run: 8 training images (2 iterations of 4), 2 validation images."""
    argv = ['--dataset-root', voc_root, '--num-train-images', '8', '--num-val-images', '2',
            '--batch-size', '4', '--epochs', '1', '--save-prefix', str(prefix)] + list(flags)
    return train_ssd.main(argv)


def test_tiny_run_writes_params_metrics_and_plot(voc_root, tmp_path):
    # 2 iterations, one finite value per loss and iteration
    written = assert_run_outputs(tmp_path / 'run', run(voc_root, tmp_path / 'run'), LOSSES, 2)
    final = written['final']
    assert written['recipe'] == 'train_ssd'
    assert written['args']['miner'] == 'gluonmine-hard-negative'
    assert final['params'].endswith('run.params')
    anchors, mining = final['sampler']['anchors'], final['sampler']['mining']
    assert set(anchors) == {'images', 'positives_per_image', 'negatives_per_image', 'fill_rate',
                            'duplicate_rate', 'negative_iou_mean', 'negative_iou_histogram'}
    assert set(mining) == MINING_KEYS
    # hard negative mining: 3 negatives per positive (these images all have objects), and the
    # hardest ones: their mean loss is above the mean of all negatives
    assert anchors['images'] == 8 and anchors['positives_per_image'] > 0
    assert anchors['negatives_per_image'] == pytest.approx(3 * anchors['positives_per_image'])
    assert mining['mined_loss_mean'] > mining['all_loss_mean'] > 0
    assert mining['hardest_share'] == 1.0
    histogram = anchors['negative_iou_histogram']
    assert sum(histogram['counts']) == round(anchors['negatives_per_image'] * 8)
    assert histogram['counts'][-1] == 0                         # negatives: IoU < 0.5


@pytest.mark.parametrize('miner', ['gluoncv', 'ohem', 'random'])
def test_each_miner_trains(voc_root, tmp_path, miner):
    metrics = run(voc_root, tmp_path / miner, '--miner', miner)
    assert all(np.isfinite(v).all() for v in metrics['loss_curve'].values())
    anchors = metrics['final']['sampler']['anchors']
    mining = metrics['final']['sampler']['mining']
    assert anchors['negatives_per_image'] <= 3 * anchors['positives_per_image'] + 1e-9
    assert set(mining) == MINING_KEYS
    if miner == 'random':       # a random subset: far from the hardest
        assert mining['mined_loss_mean'] < 2 * mining['all_loss_mean']
        assert mining['hardest_share'] < 0.5
    else:
        assert mining['mined_loss_mean'] > mining['all_loss_mean']



def test_a_batch_splits_over_two_devices(voc_root, tmp_path, cpu_devices):
    # two images a device; the positive count is gathered over both (MultiBoxLoss)
    metrics = run(voc_root, tmp_path / 'two', '--gpus', '0', '1')
    written = assert_run_outputs(tmp_path / 'two', metrics, LOSSES, 2)
    assert written['final']['sampler']['anchors']['images'] == 8
    # each device's BatchNorm statistics came from its own images: all devices hold the
    # first's when the run evaluates, so the weights saved score what it measured
    assert cpu_devices == [[]]
    single = evaluate.main([str(tmp_path / 'two'), '--output', str(tmp_path / 'one')])
    assert single['map'] == pytest.approx(written['final']['map'])

def test_same_seed_reproduces_losses_and_statistics(voc_root, tmp_path):
    # augmentation is seeded per draw and targets are made in the step: the number of
    # DataLoader workers does not matter
    first = run(voc_root, tmp_path / 'a', '--seed', '5', '--miner', 'ohem')
    second = run(voc_root, tmp_path / 'b', '--seed', '5', '--miner', 'ohem', '--num-workers', '2')
    other = run(voc_root, tmp_path / 'c', '--seed', '6', '--miner', 'ohem')
    assert first['loss_curve'] == second['loss_curve']
    assert first['final']['sampler'] == second['final']['sampler']
    assert first['final']['map'] == second['final']['map']
    assert first['loss_curve'] != other['loss_curve']


def test_flags_have_real_defaults():
    args = train_ssd.parse_args([])
    assert (args.network, args.miner, args.dataset) == ('tiny', 'gluonmine-hard-negative',
                                                        'synthetic')
    assert args.neg_pos_ratio == 3 and args.gpus == [] and args.save_prefix == 'runs/ssd'
    assert '' not in vars(args).values()
    for bad in (['--miner', 'nope'], ['--ohem-iou', '1.5'], ['--neg-pos-ratio', '-1']):
        with pytest.raises(SystemExit):
            train_ssd.parse_args(bad)


def test_main_is_short():
    import inspect
    assert len(inspect.getsource(train_ssd.main).splitlines()) <= 60


# ---------------------------------------------------------------- targets and miners

def anchors_grid():
    """Four 10 x 10 anchors in centre format (1, 4, 4), side by side along x."""
    return nd.array([[[5 + 10 * i, 5, 10, 10] for i in range(4)]])


def test_targets_of_an_image_without_objects_are_background_and_finite():
    # image 0: one object exactly on anchor 1; image 1: padding rows only (no object).
    # GluonCV's generator matches every anchor of image 1 to the padding box (NaN box
    # targets, class 0); the recipe keeps class 0 and zeroes the box targets.
    label = nd.array([[[10, 0, 20, 10, 2, 0], [-1, -1, -1, -1, -1, -1]],
                      [[-1, -1, -1, -1, -1, -1], [-1, -1, -1, -1, -1, -1]]])
    generator = train_ssd.SSDTargetGenerator(iou_thresh=0.5, stds=train_ssd.BOX_STDS,
                                             negative_mining_ratio=-1)
    cls_target, box_target = train_ssd.ssd_targets(generator, anchors_grid(), label)
    assert_array_equal(cls_target.asnumpy(), [[0, 3, 0, 0], [0, 0, 0, 0]])
    assert_array_equal(box_target.asnumpy(), np.zeros((2, 4, 4)))  # exact match: all-zero codes


def test_gluoncv_selection_is_gluoncv_rule():
    # one positive (anchor 0) -> 3 hardest negatives: losses 9, 7, 5 (anchors 4, 2, 3)
    losses = nd.array([[1, 2, 7, 5, 9, 3]])
    cls_target = nd.array([[1, 0, 0, 0, 0, 0]])
    samples = train_ssd.gluoncv_selection(losses, cls_target, 3)
    assert_array_equal(samples.asnumpy(), [[1, 0, -1, -1, -1, 0]])


def test_nms_hard_negative_miner_skips_overlapping_negatives():
    # one positive (anchor 0) -> 3 negatives. The hardest negative is anchor 1; anchor 2
    # (second hardest) is a near-duplicate of anchor 1's box (IoU 0.9 > 0.7) and is
    # suppressed, so anchors 1, 3 and 4 are mined instead of 1, 2 and 3.
    losses = nd.array([[0.5, 9, 8, 7, 6, 1]])
    samples = nd.array([[1, -1, -1, -1, -1, -1]])
    boxes = nd.array([[[0, 0, 10, 10], [20, 0, 30, 10], [20, 0, 30, 9], [40, 0, 50, 10],
                       [60, 0, 70, 10], [80, 0, 90, 10]]])
    for hybrid in (False, True):
        miner = train_ssd.NMSHardNegativeMiner(3, 0.7)
        miner.initialize()
        if hybrid:
            miner.hybridize()
        assert_array_equal(miner(losses, samples, boxes).asnumpy(), [[1, -1, 0, -1, -1, 0]])
    # without NMS (threshold 1) it is SSD's hard negative mining
    plain = train_ssd.NMSHardNegativeMiner(3, 1.0)
    assert_array_equal(plain(losses, samples, boxes).asnumpy(), [[1, -1, -1, -1, 0, 0]])


def test_random_negative_miner_keeps_quota_and_follows_the_seed():
    samples = nd.array(np.r_[np.ones(2), -np.ones(30)].reshape(1, 32))
    losses = nd.array(np.arange(32).reshape(1, 32))
    miner = train_ssd.RandomNegativeMiner(3)
    mx.random.seed(1)
    first = miner(losses, samples).asnumpy()
    mx.random.seed(1)
    again = miner(losses, samples).asnumpy()
    mx.random.seed(2)
    other = miner(losses, samples).asnumpy()
    assert (first > 0).sum() == 2 and (first < 0).sum() == 6     # floor(3 * 2) negatives
    assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_ohem_sampler_in_gluoncv_targets_selects_what_hard_negative_mining_does():
    # Why --miner ohem is not "GluonCV's SSDTargetGenerator with gluonmine's OHEMSampler":
    # with SSD's matching every unmatched anchor has IoU < 0.5 with every object, so the
    # sampler's eligible negatives are all negatives, ranked by -p(background), i.e. by the
    # cross-entropy of a background target, with the same floor(3 * positives) quota: the
    # very anchors HardNegativeMiner keeps in the loss.
    from gluonmine.losses import class_losses, samples_from_targets
    from gluonmine.ohem import OHEMSampler
    from gluonmine.hard_negative import HardNegativeMiner
    rng = np.random.default_rng(0)
    anchors = nd.array(np.concatenate([rng.uniform(0, 128, (1, 400, 2)),
                                       rng.uniform(8, 64, (1, 400, 2))], axis=-1))
    xy = rng.uniform(0, 80, (3, 4, 2))
    label = np.concatenate([xy, xy + rng.uniform(16, 48, (3, 4, 2)),
                            rng.integers(0, 3, (3, 4, 1)), np.zeros((3, 4, 1))], axis=-1)
    label[2, 1:] = -1                                           # image 2: one object
    label = nd.array(label)
    logits = nd.array(rng.normal(size=(3, 400, 4)))
    naive = train_ssd.SSDTargetGenerator(iou_thresh=0.5, stds=train_ssd.BOX_STDS,
                                         negative_mining_ratio=-1)
    cls_target, _ = train_ssd.ssd_targets(naive, anchors, label)
    mined = HardNegativeMiner(3)(class_losses(nd, logits, cls_target),
                                 samples_from_targets(nd, cls_target)).asnumpy()
    sampling = train_ssd.SSDTargetGenerator(iou_thresh=0.5, stds=train_ssd.BOX_STDS,
                                            negative_mining_ratio=3)
    sampling._sampler = OHEMSampler(3)                          # pylint: disable=protected-access
    sampled, _, _ = sampling(anchors, logits, label.slice_axis(axis=-1, begin=0, end=4),
                             label.slice_axis(axis=-1, begin=4, end=5))
    sampled = sampled.asnumpy()                                 # class, 0 mined, -1 ignored
    assert (mined < 0).sum() > 30
    assert_array_equal(sampled == 0, mined < 0)
    assert_array_equal(sampled > 0, mined > 0)


def test_two_dist_sync_workers_end_with_identical_parameters(voc_root, tmp_path):
    # the same launch as tests/test_distributed.py (scheduler, server, two workers on
    # 127.0.0.1), running this recipe: the weights through the summed gradients, the
    # BatchNorm statistics through parallel.share_untrained
    from test_distributed import assert_identical_workers, run_two_workers
    prefix = str(tmp_path / 'run')
    run_two_workers([sys.executable, train_ssd.__file__, '--kvstore', 'dist_sync',
                     '--dataset-root', voc_root, '--num-train-images', '8', '--num-val-images',
                     '2', '--batch-size', '2', '--epochs', '2', '--save-prefix', prefix], tmp_path)
    assert_identical_workers(prefix)


# ---------------------------------------------------------------- flags, net and miners

def test_flag_bounds():
    # a ratio of 0 (positives only) and NMS thresholds 0 and 1 (1: no suppression) are valid
    for good in (['--neg-pos-ratio', '0'], ['--ohem-iou', '1'], ['--ohem-iou', '0']):
        train_ssd.parse_args(good)
    with pytest.raises(SystemExit):
        train_ssd.parse_args(['--ohem-max-negatives', '0'])


def six_anchors():
    """One image, six 10 x 10 anchors (centre format) along x; anchor 2's box is anchor 1's
    a pixel lower (IoU 0.9). Anchor 0 is a positive; the negatives' background logits make
    their losses fall from anchor 1 to anchor 5. Box predictions 0: decoded, the anchors."""
    anchors = nd.array([[[5, 5, 10, 10], [25, 5, 10, 10], [25, 4.5, 10, 9], [45, 5, 10, 10],
                         [65, 5, 10, 10], [85, 5, 10, 10]]])
    cls_pred = nd.zeros((1, 6, 4))
    cls_pred[0, :, 0] = nd.array([0, -9, -8, -7, -6, -1])
    cls_target = nd.array([[1, 0, 0, 0, 0, 0]])
    return cls_pred, nd.zeros((1, 6, 4)), cls_target, nd.zeros((1, 6, 4)), anchors


def background_loss(logit):
    """Cross-entropy of a background target, logits (logit, 0, 0, 0)."""
    return np.log(np.exp(logit) + 3) - logit


def miner_args(*flags):
    return train_ssd.parse_args(list(flags))


@pytest.mark.parametrize('miner', ['gluoncv', 'gluonmine-hard-negative', 'ohem'])
def test_every_miner_keeps_neg_pos_ratio_hardest_negatives(miner):
    # --neg-pos-ratio 1, one positive: the loss trains on anchor 0 (loss log 4, four equal
    # logits) and the hardest negative, anchor 1
    inputs = six_anchors()
    chosen = train_ssd.build_miner(miner_args('--miner', miner, '--neg-pos-ratio', '1'))
    _, cls, _ = chosen.loss(*[[x] for x in inputs])[:3]
    assert cls[0].asnumpy() == pytest.approx([np.log(4) + background_loss(-9)])
    mined = train_ssd.mined_samples(chosen, *inputs).asnumpy()
    assert_array_equal(mined, [[1, -1, 0, 0, 0, 0]])


def test_ohem_miner_takes_its_nms_flags():
    # --neg-pos-ratio 3: NMS at 0.7 drops anchor 2 (IoU 0.9 with the harder anchor 1);
    # at 1 it keeps it; --ohem-max-negatives 2 leaves 2 of the quota of 3
    inputs = six_anchors()
    expected = {'0.7': [[1, -1, 0, -1, -1, 0]], '1': [[1, -1, -1, -1, 0, 0]]}
    for iou, samples in expected.items():
        miner = train_ssd.build_miner(miner_args('--miner', 'ohem', '--ohem-iou', iou))
        assert_array_equal(train_ssd.mined_samples(miner, *inputs).asnumpy(), samples)
    capped = train_ssd.build_miner(miner_args('--miner', 'ohem', '--ohem-iou', '1',
                                              '--ohem-max-negatives', '2'))
    assert_array_equal(train_ssd.mined_samples(capped, *inputs).asnumpy(),
                       [[1, -1, -1, 0, 0, 0]])


def test_step_statistics_hand_checked():
    # OHEM at ratio 2 mines anchors 1 and 3 (2 is suppressed); SSD's rule at the same ratio
    # keeps 1 and 2: half the mined negatives are the hardest. The negatives' mean loss is
    # over anchors 1 to 5, not the positive.
    args = miner_args('--miner', 'ohem', '--neg-pos-ratio', '2')
    miner = train_ssd.build_miner(args)
    inputs = six_anchors()
    mined = train_ssd.mined_samples(miner, *inputs)
    out = train_ssd.StepOutput({}, inputs[0], inputs[1], inputs[4], inputs[2],
                               nd.array([[[0, 0, 10, 10]]]), mined)
    stats = train_ssd.new_stats()
    train_ssd.build_step(args, None, miner, None, [mx.cpu()], None).record([out], stats)
    losses = background_loss(np.array([-9, -8, -7, -6, -1]))
    assert stats['mining'].summary() == pytest.approx({
        'mined_loss_mean': (losses[0] + losses[2]) / 2, 'all_loss_mean': losses.mean(),
        'hardest_share': 0.5})
    summary = stats['anchors'].summary()
    assert (summary['positives_per_image'], summary['negatives_per_image']) == (1, 2)


def test_miner_statistics_merge_every_count():
    first, second = train_ssd.MinerStats(), train_ssd.MinerStats()
    first.update(4., 2., shared=1, mined=4)
    second.update(6., 2., shared=3, mined=4)
    first.merge(second)
    assert first.summary() == {'mined_loss_mean': 5., 'all_loss_mean': 2., 'hardest_share': 0.5}


def test_iteration_losses_sum_over_images_and_devices():
    def losses(*values):
        return train_ssd.StepOutput(dict(zip(LOSSES, [nd.array(v) for v in values])),
                                    *[None] * 6)
    assert train_ssd.record_losses([losses([1, 2], [3, 4], [4, 6]), losses([5], [0], [5])]) == {
        'cls': 8., 'box': 7., 'total': 15.}


def test_anchor_corners():
    # (cx, cy, w, h) -> (x1, y1, x2, y2)
    corners = train_ssd.anchor_corners(nd.array([[[5, 5, 10, 10], [20, 10, 4, 6]]]))
    assert_array_equal(corners, [[0, 0, 10, 10], [18, 7, 22, 13]])


def test_val_transform_scale_maps_back_to_the_original_pixels():
    # a 200 x 100 (W x H) image resized to 128 x 128: x by 200 / 128, y by 100 / 128
    image = mx.nd.zeros((100, 200, 3), dtype='uint8')
    resized, label, scale = train_ssd.ValTransform(128)(image, np.array([[0, 0, 200, 100, 0, 0]]))
    assert resized.shape == (3, 128, 128)
    assert_allclose(label[0, :4], [0, 0, 128, 128])
    assert_allclose(scale.asnumpy(), [200 / 128., 100 / 128., 200 / 128., 100 / 128.])


def test_target_generator_matches_at_iou_half_and_encodes_with_gluoncvs_stds():
    # ground truth [0, 0, 10, 12]: anchor 0 [0, 0, 10, 10] its best (IoU 0.83), anchor 1
    # [0, 0, 10, 26] at IoU 0.46 is background. Anchor 0's targets: centre 1 px lower (of
    # 10, std 0.1), height 12 / 10 (std 0.2)
    anchors = nd.array([[[5, 5, 10, 10], [5, 13, 10, 26]]])
    label = nd.array([[[0, 0, 10, 12, 0, 0]]])
    cls_target, box_target = train_ssd.ssd_targets(train_ssd.target_generator(), anchors, label)
    assert_array_equal(cls_target.asnumpy(), [[1, 0]])
    assert_allclose(box_target.asnumpy(), [[[0, 1, 0, np.log(1.2) / 0.2], [0, 0, 0, 0]]],
                    rtol=1e-5, atol=1e-6)


def test_a_step_reports_each_loss_and_averages_gradients_over_workers():
    # a stand-in net giving six_anchors' predictions; ground truth exactly on anchor 0. At
    # --neg-pos-ratio 1: cls = log 4 + the hardest negative's loss, box = 0 (exact box
    # predictions). The update divides the summed gradients by the number of workers.
    cls_pred, box_pred, _, _, anchors = six_anchors()
    weight = nd.ones((1,))
    weight.attach_grad()

    def net(data):
        return cls_pred * weight, box_pred * weight, anchors

    class Trainer(object):
        steps = []

        def step(self, size):
            self.steps.append(size)
    args = miner_args('--neg-pos-ratio', '1')
    step = train_ssd.build_step(args, net, train_ssd.build_miner(args), Trainer(), [mx.cpu()],
                                types.SimpleNamespace(num_workers=2))
    out, = step.run((nd.zeros((1, 3, 8, 8)), nd.array([[[0, 0, 10, 10, 0, 0]]])))
    assert Trainer.steps == [2]
    expected = np.log(4) + background_loss(-9)
    assert {name: out.losses[name].asscalar() for name in LOSSES} == pytest.approx(
        {'cls': expected, 'box': 0., 'total': expected})
