"""Property-based tests: the contract's invariants over everything a dataset can produce.

Random B, N, M; IoUs drawn from a set rich in exact ties, thresholds, unusable
pairs (-1), NaN and infinities; padding-only images; N smaller than num_sample.
Each example is checked against a plain NumPy statement of the rule.

The default profile keeps CI fast; ``GLUONMINE_HYPOTHESIS=long`` runs 20x more.
"""
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mxnet import nd

from conftest import float32_quota, random_boxes
from gluonmine import (HardExampleMiner, HardNegativeMiner, OHEMSampler, QuotaSampler,
                       RCNNTargetSampler, RPNTargetGenerator, RPNTargetSampler)
from gluonmine.labeling import EPS

settings.register_profile('ci', max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile('long', max_examples=1200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get('GLUONMINE_HYPOTHESIS', 'ci'))

SPECIAL = [0., 0.1, 0.3, 0.5, 0.7, 0.9, 1., -1., float('nan'), float('inf'), float('-inf')]


@st.composite
def iou_batches(draw):
    """(B, N, M) float32 IoU matrices with ties, unusable pairs, NaN, inf, padding."""
    b, n, m = draw(st.integers(1, 3)), draw(st.integers(1, 40)), draw(st.integers(1, 5))
    values = st.one_of(st.sampled_from(SPECIAL), st.floats(0, 1, width=32))
    ious = np.array(draw(st.lists(values, min_size=b * n * m, max_size=b * n * m)),
                    dtype='float32').reshape(b, n, m)
    if draw(st.booleans()):
        ious[:, :, draw(st.integers(0, m - 1))] = 0.           # a padding ground truth
    if draw(st.booleans()):
        ious[0] = np.where(ious[0] >= 0, 0., ious[0])           # an image without objects
    return ious


def reference_labels(ious, pos_iou_thresh, neg_iou_thresh_low, neg_iou_thresh_high,
                     force_positives, min_forced_iou, clobber_positives):
    """The labeling rule of DESIGN.md for one image, in NumPy: (N, M) -> (N,).

    Thresholds are the sampler's own (``label_args``): float32 values, as MXNet
    compares float32 data with.
    """
    pos, low, high = pos_iou_thresh, neg_iou_thresh_low, neg_iou_thresh_high
    force, min_forced, clobber = force_positives, min_forced_iou, clobber_positives
    usable = np.where(ious >= 0, ious, -np.inf)                # NaN, negative: unusable
    best = usable.max(axis=1)
    positive = best >= pos
    negative = (best >= low) & (best < high)
    if force:
        per_gt = usable.max(axis=0)
        cut = per_gt - np.float32(EPS)
        forced = ((usable >= cut[None]) & (per_gt > min_forced)[None]).any(axis=1)
        positive = positive | forced
        if clobber:
            positive &= ~negative
        else:
            negative &= ~positive
    return positive.astype(int) - negative.astype(int)


def reference_matches(ious):
    usable = np.where(ious >= 0, ious, -np.inf)
    return usable.argmax(axis=1)                                # first maximum; none -> 0


def check_sampled(samples, labels, num_sample, max_pos, fill_negative):
    """Exact quotas, subsets of the labelled candidates, values in {-1, 0, 1}."""
    assert set(np.unique(samples)) <= {-1., 0., 1.}
    num_pos, num_neg = (labels > 0).sum(), (labels < 0).sum()
    assert (samples > 0).sum() == min(num_pos, max_pos)
    quota = num_sample - (min(num_pos, max_pos) if fill_negative else max_pos)
    assert (samples < 0).sum() == min(num_neg, quota)
    assert not ((samples > 0) & (labels <= 0)).any()
    assert not ((samples < 0) & (labels >= 0)).any()


@given(ious=iou_batches(), num_sample=st.integers(1, 60), pos_ratio=st.floats(0, 1),
       thresholds=st.tuples(st.floats(0.01, 1), st.floats(0, 1)),
       clobber=st.booleans(), fill=st.booleans(), min_forced=st.sampled_from([0., 0.2]))
def test_rpn_sampler_invariants(ious, num_sample, pos_ratio, thresholds, clobber, fill,
                                min_forced):
    pos = thresholds[0]
    neg = min(thresholds[1], pos)
    sampler = RPNTargetSampler(num_sample, pos, neg, pos_ratio, clobber_positives=clobber,
                               min_forced_iou=min_forced, fill_negative=fill)
    samples, matches = [o.asnumpy() for o in sampler(nd.array(ious))]
    assert samples.shape == matches.shape == ious.shape[:2]
    for b in range(len(ious)):
        labels = reference_labels(ious[b], **sampler.label_args)
        np.testing.assert_array_equal(sampler.label(nd, nd.array(ious[b:b + 1])).asnumpy()[0],
                                      labels)
        check_sampled(samples[b], labels, num_sample, sampler.max_pos, fill)
        np.testing.assert_array_equal(matches[b], reference_matches(ious[b]))


@given(ious=iou_batches(), num_sample=st.integers(1, 60), pos_ratio=st.floats(0, 1),
       bands=st.tuples(st.floats(0.01, 1), st.floats(0, 1), st.floats(0, 1)))
def test_quota_sampler_invariants(ious, num_sample, pos_ratio, bands):
    pos = bands[0]
    high = min(bands[1], pos)
    low = min(bands[2], high)
    sampler = QuotaSampler(num_sample, pos, high, low, pos_ratio)
    samples, matches = [o.asnumpy() for o in sampler(nd.array(ious))]
    for b in range(len(ious)):
        labels = reference_labels(ious[b], **sampler.label_args)
        check_sampled(samples[b], labels, num_sample, sampler.max_pos, True)
        np.testing.assert_array_equal(matches[b], reference_matches(ious[b]))


@st.composite
def boxes_and_images(draw):
    """Anchors, padded ground truths (duplicates, zero-area, padding rows) and image sizes."""
    rng = np.random.RandomState(draw(st.integers(0, 2 ** 31 - 1)))
    b, n, m = draw(st.integers(1, 3)), draw(st.integers(1, 80)), draw(st.integers(0, 5))
    xy = rng.uniform(-10, 60, (n, 2))
    anchors = np.concatenate([xy, xy + rng.uniform(0, 40, (n, 2))], axis=1)
    gt = np.full((b, max(m, 1), 4), -1.)
    for i in range(b):
        real = draw(st.integers(0, m))
        xy = rng.uniform(0, 50, (real, 2))
        gt[i, :real] = np.concatenate([xy, xy + rng.uniform(0, 30, (real, 2))], axis=1)
        if real > 1 and draw(st.booleans()):
            gt[i, 1] = gt[i, 0]                                 # a duplicate box
        if real and draw(st.booleans()):
            gt[i, 0, 2] = gt[i, 0, 0]                           # a zero-area box
    im_hw = rng.uniform(20, 80, (b, 2))
    return [x.astype('float32') for x in (gt, anchors, im_hw)]


@given(inputs=boxes_and_images(), num_sample=st.integers(1, 64), quota=st.booleans())
def test_rpn_generator_invariants(inputs, num_sample, quota):
    gt, anchors, im_hw = inputs
    # the RPN rule, or a given sampler's: the RCNN-stage rule with a lower negative bound
    sampler = (QuotaSampler(num_sample, 0.6, 0.4, 0.1) if quota
               else RPNTargetSampler(num_sample))
    generator = RPNTargetGenerator(sampler=sampler)
    cls_target, box_target, box_mask = [o.asnumpy() for o in generator(
        nd.array(gt), nd.array(anchors), nd.array(im_hw))]
    assert set(np.unique(cls_target)) <= {-1., 0., 1.}
    np.testing.assert_array_equal(box_mask, np.repeat((cls_target > 0)[..., None], 4, -1))
    assert np.isfinite(box_target[box_mask > 0]).all() and not box_target[box_mask == 0].any()
    for b in range(len(gt)):
        height, width = im_hw[b]
        outside = ((anchors[:, 0] < 0) | (anchors[:, 1] < 0) | (anchors[:, 2] >= width)
                   | (anchors[:, 3] >= height))
        assert (cls_target[b][outside] == -1).all()             # never use an outside anchor
        if (gt[b, :, 0] < 0).all():
            assert (cls_target[b] != 1).all()                   # padding forces nothing
        # the sampler's rule on IoUs where an outside anchor is unusable, exact quotas
        ious = nd.contrib.box_iou(nd.array(anchors), nd.array(gt[b])).asnumpy()
        ious[outside] = -1
        labels = reference_labels(ious, **sampler.label_args)
        samples = np.where(cls_target[b] > 0, 1., np.where(cls_target[b] == 0, -1., 0.))
        check_sampled(samples, labels, num_sample, sampler.max_pos, True)


# ---------------------------------------------------------------- miners

LOSSES = [0., 0.5, 1., 2., float('nan'), float('inf'), float('-inf')]


def values_like(draw, shape, special, low=0., high=5.):
    """float32 array of shape with a mix of special values (ties, NaN, inf) and floats."""
    pick = st.one_of(st.sampled_from(special), st.floats(low, high, width=32))
    size = int(np.prod(shape))
    return np.array(draw(st.lists(pick, min_size=size, max_size=size)),
                    dtype='float32').reshape(shape)


@st.composite
def mining_inputs(draw):
    """cls, loc (B, N), boxes (B, N, 4) with duplicates and zero-area ones, samples, labels."""
    b, n = draw(st.integers(1, 3)), draw(st.integers(1, 25))
    rng = np.random.RandomState(draw(st.integers(0, 2 ** 31 - 1)))
    boxes = np.stack([random_boxes(rng, n, 60., 0., 30.) for _ in range(b)])
    if n > 1 and draw(st.booleans()):
        boxes[:, 1] = boxes[:, 0]                               # duplicates
    if draw(st.booleans()):
        boxes[:, -1, 2] = boxes[:, -1, 0]                       # zero area
    samples = rng.choice([-1., 0., 1.], size=(b, n)).astype('float32')
    labels = rng.randint(0, 3, (b, n)).astype('float32')
    return (values_like(draw, (b, n), LOSSES), values_like(draw, (b, n), LOSSES),
            boxes, samples, labels)


@given(inputs=mining_inputs(), k=st.sampled_from([None, 1, 3, 8]),
       iou=st.sampled_from([None, 0.3, 0.7]), loss_type=st.sampled_from(['cls', 'loc', 'both']),
       cap=st.sampled_from([None, 0., 0.5, 3., 1e10, 3e38]),
       minimum=st.sampled_from([0, 2, 2 ** 40]),
       by_label=st.booleans(), scope=st.sampled_from(['image', 'batch']))
def test_hard_example_miner_equals_the_reference(inputs, k, iou, loss_type, cap, minimum,
                                                 by_label, scope):
    from test_ohem import reference_mine
    by_label = by_label and iou is not None
    kwargs = dict(num_hard_examples=k, iou_threshold=iou, loss_type=loss_type,
                  max_negatives_per_positive=cap, min_negatives_per_image=minimum,
                  nms_by_label=by_label, scope=scope)
    cls, loc, boxes, samples, labels = inputs
    args = [cls, loc, boxes, samples] + ([labels] if by_label else [])
    indices, mask = [o.asnumpy() for o in HardExampleMiner(**kwargs)(
        *[nd.array(x) for x in args])]
    with np.errstate(invalid='ignore'):                                 # inf - inf in the sum
        want_indices, want_mask = reference_mine(cls, loc, boxes, samples, labels, **kwargs)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_array_equal(mask, want_mask)
    assert indices.shape == (len(cls), cls.shape[1] if k is None else k)


@given(seed=st.integers(0, 2 ** 31 - 1), shape=st.tuples(st.integers(1, 3), st.integers(1, 60)),
       ratio=st.sampled_from([0., 0.5, 1., 3., 1e10, 3e38]),
       minimum=st.sampled_from([0, 1, 5, 2 ** 40]),
       data=st.data())
def test_hard_negative_miner_equals_the_reference(seed, shape, ratio, minimum, data):
    from test_hard_negative import reference
    rng = np.random.RandomState(seed)
    values = values_like(data.draw, shape, LOSSES)
    samples = rng.choice([-1., 0., 1.], size=shape, p=[0.6, 0.2, 0.2]).astype('float32')
    got = HardNegativeMiner(ratio, minimum)(nd.array(values), nd.array(samples)).asnumpy()
    np.testing.assert_array_equal(got, reference(values, samples, ratio, minimum))


@given(seed=st.integers(0, 2 ** 31 - 1), shape=st.tuples(st.integers(1, 3), st.integers(1, 50),
                                                          st.integers(1, 4)),
       ratio=st.sampled_from([0.5, 1., 3., 1e10, 3e38]), minimum=st.sampled_from([0, 3, 2 ** 40]),
       thresh=st.sampled_from([0.3, 0.5, float('inf')]))
def test_ohem_sampler_invariants(seed, shape, ratio, minimum, thresh):
    rng = np.random.RandomState(seed)
    b, n, m = shape
    matches = rng.choice([-1., 0., 1.], size=(b, n), p=[0.8, 0.1, 0.1]).astype('float32')
    logits = rng.randn(b, n, 4).astype('float32')
    logits[rng.rand(b, n) < 0.05] = np.nan
    ious = rng.rand(b, n, m).astype('float32')
    ious[rng.rand(b, n, m) < 0.05] = np.nan
    samples = OHEMSampler(ratio, minimum, thresh)(
        nd.array(matches), nd.array(logits), nd.array(ious)).asnumpy()
    with np.errstate(invalid='ignore'):
        shifted = logits - logits.max(axis=-1, keepdims=True)
        p_background = np.exp(shifted[..., 0]) / np.exp(shifted).sum(axis=-1)
        near = (np.nan_to_num(ious, nan=-1.) >= thresh).any(axis=-1)
    eligible = (matches < 0) & ~near & np.isfinite(p_background)
    assert set(np.unique(samples)) <= {-1., 0., 1.}
    np.testing.assert_array_equal(samples > 0, matches >= 0)          # positives untouched
    assert not ((samples < 0) & ~eligible).any()                      # only eligible negatives
    for i in range(b):
        quota = float32_quota(ratio, (matches[i] >= 0).sum(), minimum)
        assert (samples[i] < 0).sum() == min(quota, eligible[i].sum())
        chosen = p_background[i][samples[i] < 0]
        left = p_background[i][eligible[i] & (samples[i] == 0)]
        if len(chosen) and len(left):                                 # hardest = least background
            assert chosen.max() <= left.min() + 1e-6


# ---------------------------------------------------------------- RCNN sampler

@st.composite
def rcnn_batches(draw):
    """Proposals (dead ones, copies of ground truths, zero-area), padded ground truths."""
    rng = np.random.RandomState(draw(st.integers(0, 2 ** 31 - 1)))
    b, n, rows = draw(st.integers(1, 2)), draw(st.integers(1, 30)), draw(st.integers(1, 6))
    gt = np.full((b, rows, 4), -1, 'float32')
    for i in range(b):
        real = draw(st.integers(0, rows))
        gt[i, :real] = random_boxes(rng, real, 60., 4., 30.)
    rois = np.stack([random_boxes(rng, n, 60., 0., 35.) for _ in range(b)])
    if draw(st.booleans()):
        rois[:, 0] = gt[:, 0]                                         # a proposal equal to a gt
    scores = rng.uniform(0, 1, (b, n)).astype('float32')
    scores[rng.rand(b, n) < 0.2] = -1                                 # dead proposals
    return rois, scores, gt


def multiset(boxes):
    return sorted(map(tuple, np.round(boxes, 4)))


@given(batch=rcnn_batches(), num_sample=st.integers(1, 40), pos_ratio=st.floats(0, 1),
       low=st.sampled_from([0., 0.1]))
def test_rcnn_target_sampler_invariants(batch, num_sample, pos_ratio, low):
    from test_rcnn_target import reference
    rois, scores, gt = batch
    sampler = RCNNTargetSampler(len(rois), rois.shape[1], num_sample, 0.5, pos_ratio, 10,
                                neg_iou_thresh_low=low)
    boxes, samples, matches = [o.asnumpy() for o in sampler(*[nd.array(x)
                                                              for x in (rois, scores, gt)])]
    assert boxes.shape == (len(rois), num_sample, 4) and samples.shape == matches.shape
    for i, (candidates, ious, positive, negative) in enumerate(
            reference(rois, scores, gt, high=0.5, low=low)):
        num_pos = min(positive.sum(), sampler.max_pos)
        num_neg = min(negative.sum(), num_sample - num_pos)
        np.testing.assert_array_equal(samples[i], [1] * num_pos + [-1] * num_neg
                                      + [0] * (num_sample - num_pos - num_neg))
        for sign, eligible in ((1, positive), (-1, negative)):
            chosen = multiset(boxes[i][samples[i] == sign])
            pool = multiset(candidates[eligible])
            assert all(chosen.count(box) <= pool.count(box) for box in set(chosen))
        taken = samples[i] != 0
        assert (boxes[i][~taken] == -1).all() and not matches[i][~taken].any()
        if taken.any():
            want = nd.contrib.box_iou(nd.array(boxes[i][taken]), nd.array(gt[i])).asnumpy()
            np.testing.assert_array_equal(matches[i][taken], want.argmax(axis=1))
