"""RPNTargetSampler and RPNTargetGenerator: rules, quotas, GluonCV parity, modes."""
import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo.rcnn.rpn.rpn_target import RPNTargetGenerator as GluonCVGenerator
from gluoncv.model_zoo.rcnn.rpn.rpn_target import RPNTargetSampler as GluonCVSampler
from gluoncv.nn.coder import NumPyNormalizedBoxCenterEncoder
from mxnet import nd
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats

from conftest import (assert_same_outputs, errno_left_at_erange, forward_without_host_sync,
                      pair_counts, random_boxes)
from gluonmine import QuotaSampler, RPNTargetGenerator, RPNTargetSampler
from test_reliability import Parent


def counts(samples):
    """(positives, negatives) per image of a (B, N) samples array."""
    return (samples > 0).sum(axis=1), (samples < 0).sum(axis=1)


# ---------------------------------------------------------------- sampler rules

def test_quotas_on_a_hand_checked_image():
    # 6 anchors, 1 gt: anchor 0 is positive (0.9, also the best, so nothing else is
    # forced), 1 is ignored (0.5), 2..5 are negatives (< 0.3). num_sample 4, pos_ratio 0.5:
    # 1 positive, 3 of the 4 negatives
    ious = nd.array([[[0.9], [0.5], [0.1], [0.0], [0.2], [0.05]]])
    samples, matches = RPNTargetSampler(num_sample=4)(ious)
    s = samples.asnumpy()[0]
    assert s[0] == 1 and s[1] == 0
    assert (s[2:] == -1).sum() == 3 and (s[2:] == 0).sum() == 1
    assert_array_equal(matches.asnumpy(), np.zeros((1, 6)))


def test_fewer_candidates_than_num_sample_keeps_everything():
    ious = nd.array([[[0.9, 0.0], [0.1, 0.0], [0.0, 0.8], [0.5, 0.5]]])
    samples, matches = RPNTargetSampler(num_sample=256)(ious)
    assert_array_equal(samples.asnumpy(), [[1, -1, 1, 0]])
    assert_array_equal(matches.asnumpy(), [[0, 0, 1, 0]])


def test_no_positives_and_all_ignored():
    # image 0: no gt (all padding) -> negatives only, at most num_sample of them;
    # image 1: every anchor outside the image -> all ignored
    ious = nd.array([np.zeros((300, 3)), -np.ones((300, 3))])
    samples, matches = RPNTargetSampler(num_sample=64)(ious)
    pos, neg = counts(samples.asnumpy())
    assert_array_equal(pos, [0, 0])
    assert_array_equal(neg, [64, 0])
    assert_array_equal(matches.asnumpy(), np.zeros((2, 300)))


def test_fill_negative_off_keeps_the_negative_quota_fixed():
    ious = nd.array([np.concatenate([np.full((2, 1), 0.9), np.zeros((100, 1))])])
    for fill, want_neg in [(True, 8), (False, 5)]:
        samples, _ = RPNTargetSampler(num_sample=10, fill_negative=fill)(ious)
        assert_array_equal(counts(samples.asnumpy()), [[2], [want_neg]])


def random_ious(rng, batch, n, m, invalid=0.2):
    """IoU matrices where every gt has a positive best IoU, some anchors unusable."""
    ious = rng.rand(batch, n, m) ** 3
    ious[rng.rand(batch, n) < invalid] = -1
    return ious.astype('float32')


def test_counts_are_exact_on_random_matrices():
    rng = np.random.RandomState(0)
    ious = random_ious(rng, 6, 500, 7)
    sampler = RPNTargetSampler(num_sample=128, pos_ratio=0.25)
    labels = sampler.label(nd, nd.array(ious)).asnumpy()
    samples = sampler(nd.array(ious))[0].asnumpy()
    num_pos, num_neg = counts(labels)
    pos, neg = counts(samples)
    assert_array_equal(pos, np.minimum(num_pos, 32))
    assert_array_equal(neg, np.minimum(num_neg, 128 - np.minimum(num_pos, 32)))
    # chosen positives are labelled positives, chosen negatives labelled negatives
    assert not ((samples > 0) & (labels <= 0)).any()
    assert not ((samples < 0) & (labels >= 0)).any()


# ---------------------------------------------------------------- GluonCV parity

def test_labels_equal_gluoncv_with_clobber_positives():
    rng = np.random.RandomState(1)
    ours = RPNTargetSampler(clobber_positives=True)
    # a num_sample larger than N switches GluonCV's subsampling off
    theirs = GluonCVSampler(num_sample=10 ** 6, pos_iou_thresh=0.7, neg_iou_thresh=0.3,
                            pos_ratio=0.5)
    for quantized in (False, True):
        ious = random_ious(rng, 4, 400, 6)
        if quantized:                       # many exact ties with each gt's best IoU
            ious = np.where(ious >= 0, np.round(ious, 1), ious).astype('float32')
        labels = ours.label(nd, nd.array(ious)).asnumpy()
        for b in range(len(ious)):
            want, _ = theirs(ious[b])
            assert_array_equal(labels[b], want)


def test_a_ground_truth_overlapping_nothing_forces_nothing_unlike_gluoncv():
    # gt 1 overlaps no anchor (a padding row): GluonCV forces every anchor by it, so the
    # anchors of the ignore band (0.5, 0.4) turn positive; gluonmine ignores them
    ious = np.array([[0.9, 0.], [0.5, 0.], [0.1, 0.], [0.4, 0.]], 'float32')
    theirs, _ = GluonCVSampler(10 ** 6, 0.7, 0.3, 0.5)(ious)
    assert_array_equal(theirs, [1, 1, -1, 1])
    ours = RPNTargetSampler(clobber_positives=True).label(nd, nd.array(ious[None])).asnumpy()
    assert_array_equal(ours[0], [1, 0, -1, 0])


def test_matches_equal_gluoncv():
    rng = np.random.RandomState(2)
    ious = np.round(random_ious(rng, 3, 300, 5), 2).astype('float32')
    _, matches = RPNTargetSampler()(nd.array(ious))
    for b in range(len(ious)):
        _, want = GluonCVSampler(256, 0.7, 0.3, 0.5)(ious[b])
        assert_array_equal(matches.asnumpy()[b], want)


def selection_counts(samples, sign):
    return (np.sign(samples) == sign).sum(axis=0)


def test_subsampling_is_uniform_like_gluoncv():
    # 10 positives (IoU 0.8) and 30 negatives (IoU 0.1); num_sample 8, pos_ratio 0.25:
    # every draw keeps 2 of 10 positives and 6 of 30 negatives
    draws = 3000
    image = np.concatenate([np.full((10, 1), 0.8), np.full((30, 1), 0.1)]).astype('float32')
    mx.random.seed(5)
    samples, _ = RPNTargetSampler(num_sample=8, pos_ratio=0.25)(nd.array([image] * draws))
    ours = samples.asnumpy()
    np.random.seed(5)
    theirs = np.stack([GluonCVSampler(8, 0.7, 0.3, 0.25)(image)[0] for _ in range(draws)])
    for sampled in (ours, theirs):
        assert_array_equal(counts(sampled), [[2] * draws, [6] * draws])
    for sign, rows in [(1, slice(0, 10)), (-1, slice(10, 40))]:
        mine, gluon = selection_counts(ours, sign)[rows], selection_counts(theirs, sign)[rows]
        # each candidate equally likely (chi-square goodness of fit) ...
        assert stats.chisquare(mine).pvalue > 1e-3
        assert stats.chisquare(gluon).pvalue > 1e-3
        # ... and the same distribution as GluonCV's (chi-square homogeneity)
        assert stats.chi2_contingency(np.stack([mine, gluon]))[1] > 1e-3
    # every pair of positives equally likely together, not only each one alone
    pairs = pair_counts((np.flatnonzero(row[:10] > 0) for row in ours), 10)
    assert stats.chisquare(pairs).pvalue > 1e-3
    assert stats.chi2_contingency(np.stack([
        pairs, pair_counts((np.flatnonzero(row[:10] > 0) for row in theirs), 10)]))[1] > 1e-3


# ---------------------------------------------------------------- modes, host, errors

def test_sampler_eager_hybrid_exported_agree(modes):
    ious = nd.array(random_ious(np.random.RandomState(3), 2, 300, 4))
    assert_same_outputs(modes(lambda: RPNTargetSampler(num_sample=32), [ious]))


def test_exported_sampler_has_no_custom_operator(tmp_path):
    from conftest import export_and_import
    sampler = RPNTargetSampler()
    sampler.hybridize()
    sampler(nd.array(random_ious(np.random.RandomState(4), 1, 50, 3)))
    _, graph = export_and_import(sampler, tmp_path, 1)
    assert 'Custom' not in {node['op'] for node in graph['nodes']}


def test_sampler_forward_never_syncs_with_host():
    ious = nd.array(random_ious(np.random.RandomState(5), 2, 200, 3))
    eager, hybrid = forward_without_host_sync(RPNTargetSampler(num_sample=16), [ious])
    for out in (eager, hybrid):
        assert_array_equal(counts(out[0])[0], [8, 8])


@pytest.mark.parametrize('kwargs, name', [
    (dict(num_sample=0), 'num_sample'), (dict(num_sample=2.5), 'num_sample'),
    (dict(pos_iou_thresh=0.), 'pos_iou_thresh'), (dict(pos_iou_thresh=1.5), 'pos_iou_thresh'),
    (dict(neg_iou_thresh=-0.1), 'neg_iou_thresh'), (dict(neg_iou_thresh=0.8), 'neg_iou_thresh'),
    (dict(pos_ratio=1.2), 'pos_ratio'), (dict(pos_ratio=float('nan')), 'pos_ratio'),
    (dict(min_forced_iou=1.), 'min_forced_iou'), (dict(min_forced_iou=-1), 'min_forced_iou'),
])
def test_sampler_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RPNTargetSampler(**kwargs)


@pytest.mark.parametrize('hybrid', [False, True])
def test_sampler_rejects_wrong_rank(hybrid):
    sampler = RPNTargetSampler()
    if hybrid:
        sampler.hybridize()
    with pytest.raises(ValueError, match=r'ious must have shape \(B, N, M\), got \(5, 3\)'):
        sampler(nd.zeros((5, 3)))


# ---------------------------------------------------------------- generator

IM_HW = np.array([[80., 100.], [100., 90.]], dtype='float32')


def generator_inputs(seed=0, n=600, m=4):
    rng = np.random.RandomState(seed)
    anchors = random_boxes(rng, n, size=110., min_side=8., max_side=50.) - 5.
    gt = np.stack([random_boxes(rng, m, size=80., min_side=10.) for _ in range(2)])
    gt[1, -1] = -1                                                          # one padding row
    return anchors, gt


def gluoncv_ious(anchors, gt, height, width, border=0.):
    """IoU with GluonCV's border rule: -1 for anchors crossing the image by more than
    ``border`` pixels."""
    ious = nd.contrib.box_iou(nd.array(anchors), nd.array(gt)).asnumpy()
    outside = ((anchors[:, 0] < -border) | (anchors[:, 1] < -border)
               | (anchors[:, 2] >= width + border) | (anchors[:, 3] >= height + border))
    ious[outside] = -1
    return ious


def test_generator_targets_equal_gluoncv_encoding_for_the_same_samples():
    anchors, gt = generator_inputs()
    stds = (1., 1., 2., 2.)
    cls_target, box_target, box_mask = RPNTargetGenerator(num_sample=64, stds=stds)(
        nd.array(gt), nd.array(anchors), nd.array(IM_HW))
    for b in range(2):
        height, width = IM_HW[b]
        real = gt[b][gt[b, :, 0] >= 0]
        ious = gluoncv_ious(anchors, real, height, width)
        cls = cls_target.asnumpy()[b]
        samples = np.where(cls > 0, 1., np.where(cls == 0, -1., 0.))
        # the sampled labels are a subset of the rule's labels on GluonCV's IoU
        labels = RPNTargetSampler().label(nd, nd.array(ious[None])).asnumpy()[0]
        assert not ((samples != 0) & (samples != labels)).any()
        # GluonCV's encoder, fed our samples, gives our box targets
        want_target, want_mask = NumPyNormalizedBoxCenterEncoder(stds=stds)(
            samples[None], np.argmax(ious, axis=1)[None], anchors[None], real[None])
        assert_allclose(box_target.asnumpy()[b], want_target[0], rtol=1e-5, atol=1e-5)
        assert_array_equal(box_mask.asnumpy()[b], want_mask[0])


def rule_cls_target(ious, rule=None):
    """cls_target (+1/0/-1) of a sampler's rule (default: the RPN rule) on a (N, M) IoU
    matrix, no subsampling."""
    labels = (rule or RPNTargetSampler()).label(nd, nd.array(ious[None])).asnumpy()[0]
    return np.where(labels > 0, 1., np.where(labels < 0, 0., -1.))


def test_generator_ignores_anchors_outside_the_image():
    anchors, gt = generator_inputs(1)
    inputs = [nd.array(gt), nd.array(anchors), nd.array(IM_HW)]
    cls_target = RPNTargetGenerator(num_sample=10 ** 4)(*inputs)[0].asnumpy()
    wide = RPNTargetGenerator(num_sample=10 ** 4, allowed_border=1000)(*inputs)[0].asnumpy()
    for b in range(2):
        height, width = IM_HW[b]
        real = gt[b][gt[b, :, 0] >= 0]
        ious = gluoncv_ious(anchors, real, height, width)
        assert (ious[:, 0] == -1).any()                     # some anchors do cross the border
        assert_array_equal(cls_target[b], rule_cls_target(ious))
        # a generous border keeps every anchor
        raw = nd.contrib.box_iou(nd.array(anchors), nd.array(real)).asnumpy()
        assert_array_equal(wide[b], rule_cls_target(raw))


def test_an_infinite_border_keeps_every_anchor_in_every_mode(modes):
    # the docstring's float('inf'), read right whatever errno earlier C code left
    anchors, gt = generator_inputs(1)
    inputs = [nd.array(gt), nd.array(anchors), nd.array(IM_HW)]
    with errno_left_at_erange():
        results = modes(lambda: RPNTargetGenerator(num_sample=10 ** 4,
                                                   allowed_border=float('inf')), inputs)
    assert_same_outputs(results)
    wide = RPNTargetGenerator(num_sample=10 ** 4, allowed_border=1000)(*inputs)
    for got, want in zip(results['eager'], wide):
        assert_array_equal(got, want.asnumpy())


@pytest.mark.parametrize('kwargs, rule, border', [
    (dict(pos_iou_thresh=0.6, neg_iou_thresh=0.2),
     RPNTargetSampler(pos_iou_thresh=0.6, neg_iou_thresh=0.2), 0.),
    (dict(allowed_border=8), RPNTargetSampler(), 8.),
    # a given sampler's rule, here one without argmax-forced positives and with a lower
    # negative bound (an anchor overlapping nothing is ignored)
    (dict(sampler=QuotaSampler(10 ** 4, neg_iou_thresh_low=0.1, pos_ratio=1.)),
     QuotaSampler(neg_iou_thresh_low=0.1), 0.)])
def test_generator_labels_with_its_thresholds_border_and_sampler(kwargs, rule, border):
    anchors, gt = generator_inputs(3)
    cls_target = RPNTargetGenerator(**dict(kwargs, num_sample=10 ** 4))(
        nd.array(gt), nd.array(anchors), nd.array(IM_HW))[0].asnumpy()
    for b in range(2):
        real = gt[b][gt[b, :, 0] >= 0]
        ious = gluoncv_ious(anchors, real, *IM_HW[b], border=border)
        assert_array_equal(cls_target[b], rule_cls_target(ious, rule))


def test_generator_shared_and_per_image_anchors_agree():
    anchors, gt = generator_inputs(2)
    inputs = [nd.array(gt), nd.array(anchors), nd.array(IM_HW)]
    per_image = [nd.array(gt), nd.array(np.stack([anchors, anchors])), nd.array(IM_HW)]
    generator = RPNTargetGenerator(num_sample=32)
    generator.hybridize()
    mx.random.seed(1)
    shared = [o.asnumpy() for o in generator(*inputs)]
    mx.random.seed(1)
    batched = [o.asnumpy() for o in generator(*per_image)]
    for got, want in zip(batched, shared):
        assert_allclose(got, want, rtol=1e-5, atol=1e-6)



class _LevelsParent(Parent):
    """A user's hybridized block passing its per-level anchors to a generator child."""

    def hybrid_forward(self, F, gt, level0, level1, level2, im_hw):  # pylint: disable=arguments-differ
        return self.child(gt, [level0, level1, level2], im_hw)


@pytest.mark.parametrize('layout', ['(N_l, 4)', '(1, N_l, 4)', '(B, N_l, 4)', 'child block'])
def test_generator_takes_anchors_one_array_a_level(layout):
    # GluonCV's FPN FasterRCNN returns its anchors as a list, one (1, N_l, 4) a level,
    # in the order of its concatenated rpn scores: the targets of the joined anchors
    anchors, gt = generator_inputs(6)
    edges = [0, 100, 450, len(anchors)]
    levels = [anchors[a:b] for a, b in zip(edges, edges[1:])]
    if layout == '(1, N_l, 4)':
        levels = [level[None] for level in levels]
    elif layout == '(B, N_l, 4)':
        levels = [np.stack([level, level]) for level in levels]
    generator = RPNTargetGenerator(num_sample=32)
    generator.hybridize()
    mx.random.seed(3)
    want = [o.asnumpy() for o in generator(nd.array(gt), nd.array(anchors), nd.array(IM_HW))]
    block = (generator if layout != 'child block'
             else _LevelsParent(RPNTargetGenerator(num_sample=32)))
    block.hybridize()
    mx.random.seed(3)
    if layout == 'child block':
        got = block(nd.array(gt), *[nd.array(level[None]) for level in levels], nd.array(IM_HW))
    else:
        got = block(nd.array(gt), [nd.array(level) for level in levels], nd.array(IM_HW))
    for g, w in zip(got, want):
        assert_allclose(g.asnumpy(), w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('levels, message', [
    ([], 'anchors is an empty list'),
    ([np.zeros((10, 4)), np.zeros((1, 5, 4))], 'anchors: the levels have shapes'),
    ([np.zeros((10, 4)), np.zeros((5, 3))], r'anchors \(a level\)'),
])
def test_generator_rejects_bad_levels_by_name(levels, message):
    anchors, gt = generator_inputs(7)
    with pytest.raises(ValueError, match=message):
        RPNTargetGenerator()(nd.array(gt), [nd.array(level) for level in levels],
                             nd.array(IM_HW))

def test_generator_without_any_ground_truth():
    anchors, _ = generator_inputs(3)
    for gt in (np.full((2, 3, 4), -1, 'float32'), np.zeros((2, 0, 4), 'float32')):
        cls_target, box_target, box_mask = RPNTargetGenerator(num_sample=32)(
            nd.array(gt), nd.array(anchors), nd.array(IM_HW))
        assert_array_equal((cls_target.asnumpy() == 0).sum(axis=1), [32, 32])
        assert (cls_target.asnumpy() != 1).all()
        assert not box_target.asnumpy().any() and not box_mask.asnumpy().any()


def test_generator_modes_agree_and_never_sync(modes):
    anchors, gt = generator_inputs(4)
    inputs = [nd.array(gt), nd.array(anchors), nd.array(IM_HW)]
    assert_same_outputs(modes(lambda: RPNTargetGenerator(num_sample=32), inputs))
    eager, hybrid = forward_without_host_sync(RPNTargetGenerator(num_sample=32), inputs)
    assert_array_equal((eager[0] == 1).sum(axis=1), (hybrid[0] == 1).sum(axis=1))


@pytest.mark.parametrize('kwargs, name', [
    (dict(stds=(1., 1., 1.)), 'stds'), (dict(stds=(1., 1., 1., 1., 1.)), 'stds'),
    (dict(stds=(1., 0., 1., 1.)), 'stds'), (dict(stds=(1., 1., float('inf'), 1.)), 'stds'),
    (dict(allowed_border='x'), 'allowed_border'), (dict(sampler=object()), 'sampler'),
    (dict(num_sample=-1), 'num_sample'),
])
def test_generator_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RPNTargetGenerator(**kwargs)


@pytest.mark.parametrize('inputs, name', [
    ((np.zeros((2, 3)), np.zeros((10, 4)), IM_HW), 'gt_boxes'),
    ((np.zeros((2, 3, 4)), np.zeros((10, 3)), IM_HW), 'anchors'),
    ((np.zeros((2, 3, 4)), np.zeros((10, 4)), np.zeros((2,))), 'im_hw'),
    ((np.zeros((2, 3, 4)), np.zeros((3, 10, 4)), IM_HW), 'anchors'),
    ((np.zeros((3, 3, 4)), np.zeros((10, 4)), IM_HW), 'gt_boxes'),
])
def test_generator_rejects_bad_input_shapes(inputs, name):
    generator = RPNTargetGenerator()
    generator.hybridize()
    with pytest.raises(ValueError, match=name):
        generator(*[nd.array(x) for x in inputs])


def test_generator_uses_a_given_sampler():
    anchors, gt = generator_inputs(5)
    generator = RPNTargetGenerator(sampler=QuotaSampler(num_sample=20, pos_ratio=0.5))
    cls_target = generator(nd.array(gt), nd.array(anchors), nd.array(IM_HW))[0].asnumpy()
    assert_array_equal((cls_target >= 0).sum(axis=1), [20, 20])     # its num_sample


def test_gluoncv_generator_reference_runs():
    # the reference the benchmark compares against accepts the same inputs, one image
    anchors, gt = generator_inputs(6)
    cls, box, mask = GluonCVGenerator(num_sample=32)(nd.array(gt[0]), nd.array(anchors),
                                                     100, 80)
    assert cls.shape == (len(anchors),) and box.shape == mask.shape == (len(anchors), 4)


def test_generator_inside_autograd_record_is_a_constant():
    # targets made from inputs that carry gradients: no gradient flows through them,
    # and MXNet's index operators are never asked for one
    anchors, gt = generator_inputs(7)
    x = nd.ones((1,))
    x.attach_grad()
    with mx.autograd.record():
        moved = nd.array(anchors) + x * 0
        cls_target, _, _ = RPNTargetGenerator(num_sample=16)(nd.array(gt), moved,
                                                             nd.array(IM_HW))
        loss = (cls_target * x).sum()
    loss.backward()
    assert x.grad.asscalar() == cls_target.sum().asscalar()


def test_thresholds_are_float32_values():
    # a denormal double threshold is what float32 data is compared with: 0
    sampler = RPNTargetSampler(neg_iou_thresh=2.2250738585e-313)
    assert sampler.label_args['neg_iou_thresh_high'] == 0.
    samples, _ = sampler(nd.zeros((1, 3, 1)))
    assert not samples.asnumpy().any()


def test_forced_positives_tie_within_float32_spacing_at_one():
    # eps = 2**-23: an IoU half an eps below the ground truth's best ties with it and is
    # forced; two eps below is not (here in the ignore band [0.3, 0.7))
    best, eps = np.float32(0.5), np.spacing(np.float32(1.0))
    ious = np.float32([[[best], [best - eps / 2], [best - 2 * eps], [0.1]]])
    assert ious[0, 1, 0] < best and ious[0, 2, 0] < best - eps      # distinct in float32
    samples, _ = RPNTargetSampler(num_sample=16)(nd.array(ious))
    assert_array_equal(samples.asnumpy(), [[1, 1, 0, -1]])


def test_a_ground_truth_forcing_nothing_still_has_threshold_positives():
    # min_forced_iou above pos_iou_thresh: the best anchor (0.6) forces nothing, but it
    # reaches pos_iou_thresh 0.5 and is a positive by the threshold
    samples, _ = RPNTargetSampler(16, 0.5, 0.3, min_forced_iou=0.8)(nd.array([[[0.6], [0.1]]]))
    assert_array_equal(samples.asnumpy(), [[1, -1]])


@pytest.mark.parametrize('num_sample', [8, 4])
def test_generator_box_targets_with_four_different_stds(num_sample):
    # the stds divide each coordinate's delta: (1, 2, 3, 4) tells x from y, w from h;
    # num_sample 4: the 2 positives fill the positive quota, and each still gets its target
    anchors = nd.array([[1, 1, 21, 12], [2, 1, 24, 13], [40, 40, 60, 60]])
    gt = nd.array([[[1, 1, 22, 12]]])
    stds = (1., 2., 3., 4.)
    _, box_target, box_mask = RPNTargetGenerator(num_sample=num_sample, stds=stds)(
        gt, anchors, nd.array([[100, 100]]))
    assert_array_equal(box_mask.asnumpy()[0, :, 0], [1, 1, 0])
    want, _ = NumPyNormalizedBoxCenterEncoder(stds=stds)(
        np.ones((1, 2)), np.zeros((1, 2), int), anchors.asnumpy()[None, :2], gt.asnumpy())
    assert_allclose(box_target.asnumpy()[0, :2], want[0], rtol=1e-5, atol=1e-6)


def test_default_generator_keeps_a_forced_positive_below_the_negative_threshold():
    # the contract's default rule (the paper's): an object's best anchor, IoU 25 / 175
    anchors = nd.array([[0, 0, 10, 10], [50, 50, 60, 60]])
    cls_target, _, box_mask = RPNTargetGenerator(num_sample=8)(
        nd.array([[[5, 5, 15, 15]]]), anchors, nd.array([[100, 100]]))
    assert_array_equal(cls_target.asnumpy(), [[1, 0]])
    assert_array_equal(box_mask.asnumpy()[0, :, 0], [1, 0])


@pytest.mark.parametrize('min_forced_iou, forced', [(0.1, True), (0.2, False)])
def test_min_forced_iou_reaches_the_sampler_and_the_generator(min_forced_iou, forced):
    # an object whose best anchor has IoU 25 / 175 = 0.14: forced only when that exceeds
    # min_forced_iou, else a negative (below neg_iou_thresh 0.3)
    sampler = RPNTargetSampler(num_sample=8, min_forced_iou=min_forced_iou)
    samples, _ = sampler(nd.array([[[25 / 175.], [0.]]]))
    assert_array_equal(samples.asnumpy(), [[1 if forced else -1, -1]])
    cls_target, _, _ = RPNTargetGenerator(sampler=sampler)(
        nd.array([[[5, 5, 15, 15]]]), nd.array([[0, 0, 10, 10], [50, 50, 60, 60]]),
        nd.array([[100, 100]]))
    assert_array_equal(cls_target.asnumpy(), [[1 if forced else 0, 0]])


@pytest.mark.parametrize('sampler, height', [(None, 7), (QuotaSampler(8, pos_ratio=0.5), 5)])
def test_generator_positive_threshold_is_inclusive(sampler, height):
    # anchor 1 has IoU exactly pos_iou_thresh with the gt (0.7 for the default RPN rule,
    # 0.5 for QuotaSampler's); anchor 0 is the gt's best (IoU 1): both are positives
    anchors = nd.array([[0, 0, 10, 10], [0, 0, 10, height], [50, 50, 60, 60]])
    cls_target, _, _ = RPNTargetGenerator(num_sample=8, sampler=sampler)(
        nd.array([[[0, 0, 10, 10]]]), anchors, nd.array([[100, 100]]))
    assert_array_equal(cls_target.asnumpy(), [[1, 1, 0]])
