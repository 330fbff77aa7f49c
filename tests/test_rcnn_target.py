"""RCNNTargetSampler: the Fast R-CNN rule, quotas, GluonCV 0.10's bugs fixed, modes, errors."""
import collections

import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo.rcnn.faster_rcnn.rcnn_target import RCNNTargetSampler as GluonCVSampler
from mxnet import autograd, nd
from numpy.testing import assert_array_equal
from scipy import stats

from conftest import (assert_same_outputs, export_and_import, forward_without_host_sync,
                      pair_counts, random_boxes)
from gluonmine._block import SelectionBlock
from gluonmine.models import tiny_faster_rcnn
from gluonmine.rcnn_target import RCNNTargetSampler

PAD = [-1., -1., -1., -1.]


def sampler(num_sample=16, pos_ratio=0.25, num_image=1, **kwargs):
    """A sampler with GluonCV's arguments that do not matter here filled in."""
    return RCNNTargetSampler(num_image, 100, num_sample, 0.5, pos_ratio, 10, **kwargs)


def run(block, rois, scores, gt_boxes):
    """Outputs of block on numpy inputs, as numpy arrays."""
    return [o.asnumpy() for o in block(nd.array(rois), nd.array(scores), nd.array(gt_boxes))]


def reference(rois, scores, gt_boxes, pos=0.5, high=0.5, low=0.):
    """Per image: candidates (C, 4), their IoU (C, M) and eligible positives / negatives.

    The rule written out on GluonCV's own IoU: ground truths appended to the
    proposals; live proposals (score >= 0) may be either, ground truths only
    positive.
    """
    out = []
    for roi, score, gt in zip(rois, scores.reshape(len(rois), -1), gt_boxes):
        candidates = np.concatenate([roi, gt])
        ious = nd.contrib.box_iou(nd.array(candidates), nd.array(gt)).asnumpy()
        best = ious.max(axis=1)
        live = np.concatenate([score >= 0, np.zeros(len(gt), bool)])
        is_gt = np.concatenate([np.zeros(len(roi), bool), np.ones(len(gt), bool)])
        positive = (best >= pos) & (live | is_gt)
        negative = live & (best >= low) & (best < high)
        out.append((candidates, ious, positive, negative))
    return out


def slot_candidates(boxes, candidates):
    """Index of the candidate each output box is (boxes are unique in these tests)."""
    hits = [np.flatnonzero((candidates == box).all(axis=1)) for box in boxes]
    assert all(len(h) == 1 for h in hits), 'an output box is not exactly one candidate'
    return np.array([h[0] for h in hits], dtype=int)


def check_rule(outputs, rois, scores, gt_boxes, num_sample, max_pos, **bands):
    """Every invariant of the contract, image by image."""
    out_boxes, samples, matches = outputs
    for b, (candidates, ious, positive, negative) in enumerate(
            reference(rois, scores, gt_boxes, **bands)):
        num_pos = min(positive.sum(), max_pos)
        num_neg = min(negative.sum(), num_sample - num_pos)
        # exact counts, positives first, then negatives, then empty slots
        assert_array_equal(samples[b], [1] * num_pos + [-1] * num_neg
                           + [0] * (num_sample - num_pos - num_neg))
        taken = samples[b] != 0
        chosen = slot_candidates(out_boxes[b][taken], candidates)
        assert len(set(chosen)) == len(chosen), 'a candidate appears twice'
        assert positive[chosen[:num_pos]].all() and negative[chosen[num_pos:]].all()
        # matches: the contract's argmax for every sampled candidate, 0 in empty slots
        assert_array_equal(matches[b][taken], ious[chosen].argmax(axis=1))
        assert not matches[b][~taken].any()
        assert (out_boxes[b][~taken] == -1).all()


def random_batch(seed, num_image=3, num_proposal=300, num_gt=(4, 0, 9), num_rows=12,
                 num_dead=20):
    """Proposals (some near ground truths, the last num_dead padding with score -1)
    and ground truths padded to num_rows rows of -1; all boxes distinct."""
    rng = np.random.RandomState(seed)
    rois = np.zeros((num_image, num_proposal, 4), 'float32')
    scores = rng.uniform(size=(num_image, num_proposal, 1)).astype('float32')
    gt_boxes = np.full((num_image, num_rows, 4), -1, 'float32')
    for b in range(num_image):
        gt = random_boxes(rng, num_gt[b], size=200., min_side=20., max_side=80.)
        gt_boxes[b, :num_gt[b]] = gt
        rois[b] = random_boxes(rng, num_proposal, size=200., min_side=10., max_side=90.)
        if num_gt[b]:
            near = gt[rng.randint(0, num_gt[b], num_proposal // 3)]
            rois[b, :len(near)] = near + rng.normal(0, 4, size=near.shape)
    rois[:, num_proposal - num_dead:] = -1
    scores[:, num_proposal - num_dead:] = -1
    return rois, scores, gt_boxes


# ---------------------------------------------------------------- the rule

def test_hand_checked_image():
    # gt0 = (0, 0, 10, 10), gt1 = (20, 20, 30, 30), then a padding row.
    # p0: IoU 1 with gt0 and p1: IoU 0.5 with gt0 -> positive, match 0;
    # p2: IoU 0.6 with gt1 -> positive, match 1; p3: IoU 0.4, p4: IoU 0 -> negative;
    # p5 would be positive but has score -1 (RPN padding) -> never sampled.
    # The appended gt0, gt1 are positives (IoU 1 with themselves), the padding row never.
    # pos_ratio 1: every eligible candidate once, 5 positives, 2 negatives, 3 empty slots.
    gt = np.array([[[0, 0, 10, 10], [20, 20, 30, 30], PAD]], 'float32')
    rois = np.array([[[0, 0, 10, 10.01], [0, 0, 10, 5], [20, 20, 30, 26], [0, 0, 10, 4],
                      [50, 50, 60, 60], [0, 0, 10, 9.99]]], 'float32')
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, -1]], 'float32')
    boxes, samples, matches = run(sampler(num_sample=10, pos_ratio=1.), rois, scores, gt)
    assert_array_equal(samples, [[1, 1, 1, 1, 1, -1, -1, 0, 0, 0]])
    positives = sorted(map(tuple, boxes[0, :5]))
    assert positives == sorted(map(tuple, np.concatenate([rois[0, :3], gt[0, :2]])))
    want_match = {tuple(rois[0, 0]): 0, tuple(rois[0, 1]): 0, tuple(rois[0, 2]): 1,
                  tuple(gt[0, 0]): 0, tuple(gt[0, 1]): 1}
    assert [want_match[tuple(box)] for box in boxes[0, :5]] == list(matches[0, :5])
    assert sorted(map(tuple, boxes[0, 5:7])) == sorted(map(tuple, rois[0, 3:5]))
    assert (boxes[0, 7:] == -1).all() and not matches[0, 5:].any()


def test_quotas_on_random_batches():
    for seed in range(3):
        rois, scores, gt = random_batch(seed)
        for num_sample, pos_ratio in [(64, 0.25), (128, 0.5), (400, 0.25)]:
            block = sampler(num_sample, pos_ratio, num_image=3)
            check_rule(run(block, rois, scores, gt), rois, scores, gt, num_sample,
                       block.max_pos)


def test_negative_band_bg_lo():
    # Fast R-CNN's background band [0.1, 0.5): IoU 0.05 is ignored, 0.2 and 0.45 are
    # negatives, 0.5 positive; with the default band [0, 0.5) the 0.05 one is negative.
    gt = np.array([[[0, 0, 100, 100]]], 'float32')
    heights = [5, 20, 45, 50]                                   # IoU = height / 100
    rois = np.array([[[0, 0, 100, h] for h in heights]], 'float32')
    scores = np.ones((1, 4), 'float32')
    for low, want in [(0.1, [-1, -1, 0]), (0., [-1, -1, -1])]:
        block = sampler(num_sample=8, pos_ratio=0.5, neg_iou_thresh_low=low)
        boxes, samples, _ = run(block, rois, scores, gt)
        # 2 positives (the 0.5 proposal and the gt itself), then the negatives
        assert_array_equal(samples[0, :5], [1, 1] + want)
        negatives = sorted(boxes[0, 2:2 + (np.array(want) < 0).sum(), 3])
        assert negatives == sorted(h for h in heights[:3] if h / 100. >= low)
    rois2, scores2, gt2 = random_batch(7)
    block = sampler(96, 0.25, num_image=3, neg_iou_thresh_high=0.4, neg_iou_thresh_low=0.1)
    check_rule(run(block, rois2, scores2, gt2), rois2, scores2, gt2, 96, block.max_pos,
               high=0.4, low=0.1)


def test_image_without_ground_truth():
    # all padding rows: negatives only (num_sample of them), no positives, matches 0;
    # with a background band starting at 0.1 nothing overlaps enough: all slots empty
    rois, scores, _ = random_batch(1, num_image=2)
    gt = np.full((2, 5, 4), -1, 'float32')
    boxes, samples, matches = run(sampler(32, num_image=2), rois, scores, gt)
    assert (samples == -1).all() and not matches.any()
    boxes, samples, matches = run(sampler(32, num_image=2, neg_iou_thresh_low=0.1),
                                  rois, scores, gt)
    assert not samples.any() and (boxes == -1).all()


def test_more_ground_truth_rows_than_max_num_gt_or_none():
    rois, scores, gt = random_batch(2)
    padded = np.concatenate([gt, np.full((3, 140, 4), -1, 'float32')], axis=1)
    block = sampler(64, num_image=3)                                    # max_num_gt is 10
    check_rule(run(block, rois, scores, padded), rois, scores, padded, 64, block.max_pos)
    samples = run(block, rois, scores, np.zeros((3, 0, 4), 'float32'))[1]
    assert (samples == -1).all()


def test_fewer_candidates_than_slots():
    rois, scores, gt = random_batch(3, num_proposal=30, num_dead=5)
    block = sampler(200, 0.5, num_image=3)
    check_rule(run(block, rois, scores, gt), rois, scores, gt, 200, 100)


def test_subsets_are_uniform():
    # 400 copies of one image: 10 positives and 10 negatives; 3 of each are drawn.
    # Every candidate, and every pair of candidates, must be drawn equally often
    # (chi-square), so the images draw independently of each other and of their slots.
    gt = np.array([[[0, 0, 100, 100]]] * 400, 'float32')
    pos = [[0, 0, 100, 90 + i] for i in range(10)]                     # IoU >= 0.9
    neg = [[0, 0, 100, 10 + i] for i in range(10)]                     # IoU 0.1 - 0.19
    rois = np.array([pos + neg] * 400, 'float32')
    scores = np.ones((400, 20), 'float32')
    block = RCNNTargetSampler(400, 20, 6, 0.5, 0.5, 1, neg_iou_thresh_low=0.01)
    boxes, samples, _ = run(block, rois, scores, gt)
    assert (samples == [1, 1, 1, -1, -1, -1]).all()     # the gt itself is a positive too
    for part, candidates in [(slice(0, 3), pos + gt[0].tolist()), (slice(3, 6), neg)]:
        # (images, candidates): whether the image drew the candidate
        drawn = np.stack([(boxes[:, part] == c).all(axis=-1).any(axis=-1)
                          for c in candidates], 1)
        counts = drawn.sum(axis=0)
        assert counts.sum() == 1200
        assert stats.chisquare(counts)[1] > 1e-3
        assert stats.chisquare(pair_counts(map(np.flatnonzero, drawn), len(candidates)))[1] > 1e-3
    # the appended ground truth: one of 11 positive candidates, in 3/11 of the images
    drawn_gt = (boxes[:, :3] == gt[0, 0]).all(axis=-1).sum()
    assert stats.binomtest(int(drawn_gt), 400, 3 / 11).pvalue > 1e-3


# ---------------------------------------------------------------- GluonCV 0.10 bugs

def scarce_batch():
    """3 positives (IoU >= 0.6) and 5 negatives among 40 proposals; the other 32
    are RPN padding (score -1)."""
    gt = np.array([[[0, 0, 100, 100], PAD]], 'float32')
    rois = np.concatenate([[[0, 0, 100, 60 + i] for i in range(3)],
                           [[0, 0, 100, 5 + i] for i in range(5)],
                           [[200 + i, 200, 300, 300] for i in range(32)]]).astype('float32')
    scores = np.concatenate([np.ones(8), -np.ones(32)]).astype('float32').reshape(1, 40, 1)
    return rois[None], scores, gt


def test_no_candidate_twice_where_gluoncv_repeats():
    rois, scores, gt = scarce_batch()
    theirs = GluonCVSampler(1, 40, 32, 0.5, 0.25, 2)
    theirs.initialize()
    boxes = run(theirs, rois, scores, gt)[0][0]
    assert len({tuple(b) for b in boxes}) < len(boxes)        # GluonCV draws duplicates
    outputs = run(sampler(32, 0.25), rois, scores, gt)
    # 4 positives (3 proposals + the gt), 5 negatives, 23 empty slots: each once
    check_rule(outputs, rois, scores, gt, 32, 8)
    assert_array_equal(outputs[1][0], [1] * 4 + [-1] * 5 + [0] * 23)


def test_positive_cap_holds_when_negatives_run_short():
    # 600 proposals all overlapping the only gt: no negative at all
    gt = np.array([[[0, 0, 100, 100]]], 'float32')
    rois = np.array([[[0, 0, 100, 60 + i * 0.05] for i in range(600)]], 'float32')
    scores = np.ones((1, 600, 1), 'float32')
    theirs = GluonCVSampler(1, 600, 512, 0.5, 0.25, 1)
    theirs.initialize()
    assert (run(theirs, rois, scores, gt)[1] == 1).sum() == 512   # GluonCV: 512 of 512
    samples = run(sampler(512, 0.25), rois, scores, gt)[1]
    assert_array_equal(samples[0], [1] * 128 + [0] * 384)


# ---------------------------------------------------------------- GluonCV drop-in

def test_is_a_gluoncv_sampler_and_replaces_it_in_faster_rcnn():
    net = tiny_faster_rcnn(['a', 'b'], per_device_batch_size=2, num_sample=64)
    net.initialize()
    theirs = net.sampler
    ours = RCNNTargetSampler(2, 300, 64, 0.5, 0.25, 50)
    assert isinstance(ours, GluonCVSampler) and isinstance(ours, SelectionBlock)
    net.sampler = ours                                          # Gluon accepts the subclass
    assert net.sampler is ours
    assert ours._max_pos == theirs._max_pos == 16  # pylint: disable=protected-access
    net.reset_class(['a'])                                      # reads sampler._max_pos


def test_gluoncv_target_generator_finds_every_positive():
    # GluonCV's RCNNTargetGenerator keeps the first max_pos slots of an argsort of
    # the positive mask: every positive sampled here must get a box target
    rois, scores, gt = random_batch(4)
    block = sampler(64, 0.25, num_image=3)
    boxes, samples, matches = [nd.array(o) for o in run(block, rois, scores, gt)]
    from gluoncv.model_zoo.rcnn.faster_rcnn.rcnn_target import RCNNTargetGenerator
    generator = RCNNTargetGenerator(3, block.max_pos, 3)
    generator.initialize()
    labels = nd.array(np.arange(36).reshape(3, 12, 1) % 3)
    cls_target, _, box_mask, _ = generator(boxes, samples, matches, labels, nd.array(gt))
    num_pos = (samples.asnumpy() > 0).sum(axis=1)
    assert_array_equal(box_mask.asnumpy().sum(axis=(1, 2, 3)), 4 * num_pos)
    assert_array_equal((cls_target.asnumpy() > 0).sum(axis=1), num_pos)


# ---------------------------------------------------------------- modes, host, autograd

def test_eager_hybrid_exported_agree(modes):
    inputs = [nd.array(x) for x in random_batch(5)]
    assert_same_outputs(modes(lambda: sampler(48, 0.25, num_image=3), inputs))


def test_exported_graph_repeats_only_the_iou_per_image(tmp_path):
    # every step but one fused box_iou an image runs on the whole batch
    inputs = [nd.array(x) for x in random_batch(6)]
    ops = {}
    for num_image in (2, 3):
        block = sampler(32, num_image=num_image)
        block.hybridize()
        block(*[x[:num_image] for x in inputs])
        _, graph = export_and_import(block, tmp_path / str(num_image), 3)
        ops[num_image] = collections.Counter(node['op'] for node in graph['nodes'])
    assert 'Custom' not in ops[3]
    assert ops[3] - ops[2] == {'_contrib_box_iou': 1} and not ops[2] - ops[3]


def test_another_batch_size_rebuilds_the_graph():
    rois, scores, gt = random_batch(12)
    block = sampler(24, num_image=3)
    block.hybridize()
    for size in (3, 1, 2):
        outputs = run(block, rois[:size], scores[:size], gt[:size])
        check_rule(outputs, rois[:size], scores[:size], gt[:size], 24, 6)


def test_forward_never_syncs_with_host():
    rois, scores, gt = random_batch(8)
    eager, hybrid = forward_without_host_sync(sampler(40, num_image=3),
                                              [nd.array(x) for x in (rois, scores, gt)])
    for outputs in (eager, hybrid):
        check_rule(outputs, rois, scores, gt, 40, 10)


@pytest.mark.parametrize('hybrid', [False, True])
def test_outputs_are_constants_under_autograd(hybrid):
    rois, scores, gt = [nd.array(x) for x in random_batch(9)]
    x = nd.ones((1,))
    x.attach_grad()
    block = sampler(16, num_image=3)
    if hybrid:
        block.hybridize()
    with autograd.record():
        boxes, samples, matches = block(rois * x, scores, gt)
        loss = (boxes * x).sum() + (samples * x).sum()
    loss.backward()
    assert x.grad.asscalar() == (boxes.sum() + samples.sum()).asscalar()


# ---------------------------------------------------------------- errors and docs

@pytest.mark.parametrize('kwargs, name', [
    (dict(num_image=0), 'num_image'), (dict(num_proposal=1.5), 'num_proposal'),
    (dict(num_sample=0), 'num_sample'), (dict(pos_iou_thresh=0.), 'pos_iou_thresh'),
    (dict(pos_iou_thresh=1.2), 'pos_iou_thresh'), (dict(pos_ratio=1.5), 'pos_ratio'),
    (dict(max_num_gt=0), 'max_num_gt'), (dict(neg_iou_thresh_high=0.6), 'neg_iou_thresh_high'),
    (dict(neg_iou_thresh_high=-0.1), 'neg_iou_thresh_high'),
    (dict(neg_iou_thresh_low=0.7), 'neg_iou_thresh_low'),
    (dict(neg_iou_thresh_low=-0.1), 'neg_iou_thresh_low'),
])
def test_rejects_bad_arguments(kwargs, name):
    args = dict(num_image=1, num_proposal=10, num_sample=8, pos_iou_thresh=0.5, pos_ratio=0.25,
                max_num_gt=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        RCNNTargetSampler(**args)


@pytest.mark.parametrize('hybrid', [False, True])
@pytest.mark.parametrize('shapes, message', [
    (((2, 10), (2, 10, 1), (2, 3, 4)), r'rois must have shape \(B, N, 4\)'),
    (((2, 10, 4), (2, 10, 2), (2, 3, 4)), r'scores must have shape \(B, N, 1\) or \(B, N\)'),
    (((2, 10, 4), (2, 10, 1), (2, 3, 5)), r'gt_boxes must have shape \(B, M, 4\)'),
    (((2, 10, 4), (2, 9, 1), (2, 3, 4)), 'scores has shape'),
    (((2, 10, 4), (2, 10, 1), (3, 3, 4)), 'gt_boxes has shape'),
])
def test_rejects_bad_input_shapes(hybrid, shapes, message):
    block = sampler()
    if hybrid:
        block.hybridize()
    with pytest.raises(ValueError, match=message):
        block(*[nd.zeros(s) for s in shapes])


def test_scores_without_trailing_axis_are_accepted():
    rois, scores, gt = random_batch(11)
    mx.random.seed(3)
    with_axis = run(sampler(32, num_image=3), rois, scores, gt)
    mx.random.seed(3)
    without = run(sampler(32, num_image=3), rois, scores[..., 0], gt)
    for a, b in zip(with_axis, without):
        assert_array_equal(a, b)


def test_non_finite_boxes_count_as_padding():
    # proposal 1 has a NaN corner, ground truth 1 an infinite one: neither is ever sampled
    rois = np.array([[[0, 0, 10, 10], [np.nan, 0, 5, 5], [30, 30, 40, 40]]], 'float32')
    gt = np.array([[[0, 0, 10, 10], [0, 0, np.inf, 5]]], 'float32')
    scores = np.array([[0.9, 0.8, 0.7]], 'float32')
    boxes, samples, _ = run(sampler(num_sample=4, pos_ratio=0.5), rois, scores, gt)
    assert np.isfinite(boxes).all()
    assert_array_equal(np.sort(samples[0]), [-1, 0, 1, 1])


def test_a_small_lower_negative_bound_holds_with_appended_ground_truths():
    # bg_lo 0.04: proposals at IoU 1 / 199 and 0 are never negatives
    gt = np.float32([[[0, 0, 10, 10]]])
    rois = np.float32([[[0, 0, 10, 10], [9, 9, 19, 19], [20, 20, 30, 30]]])
    block = RCNNTargetSampler(1, 3, 8, 0.5, 1., 1, neg_iou_thresh_low=0.04)
    _, samples, _ = run(block, rois, np.ones((1, 3, 1), 'float32'), gt)
    assert_array_equal(samples, [[1, 1, 0, 0, 0, 0, 0, 0]])


def test_a_proposal_of_score_zero_is_live():
    # only a score below 0 marks RPN padding
    gt = np.float32([[[0, 0, 10, 10]]])
    rois = np.float32([[[0, 0, 10, 10.5], [30, 30, 40, 40]]])
    picked, samples, _ = run(RCNNTargetSampler(1, 2, 4, 0.5, 1., 1), rois,
                             np.zeros((1, 2, 1), 'float32'), gt)
    assert_array_equal(samples, [[1, 1, -1, 0]])
    assert sorted(map(tuple, picked[0, :2])) == sorted([tuple(rois[0, 0]), tuple(gt[0, 0])])
    assert_array_equal(picked[0, 2], rois[0, 1])


def test_a_positive_quota_of_one():
    # num_sample 4, pos_ratio 0.25: max_pos 1. Two positives (the proposal at IoU 100 / 105
    # and the appended gt), one of them kept; the proposal at IoU 0 is the negative
    gt = np.float32([[[0, 0, 10, 10]]])
    rois = np.float32([[[0, 0, 10, 10.5], [30, 30, 40, 40]]])
    picked, samples, _ = run(RCNNTargetSampler(1, 2, 4, 0.5, 0.25, 1), rois,
                             np.ones((1, 2, 1), 'float32'), gt)
    assert_array_equal(samples, [[1, -1, 0, 0]])
    assert_array_equal(picked[0, 1], rois[0, 1])


def test_negative_band_tops_at_pos_iou_thresh_by_default():
    # pos_iou_thresh 0.7 and no neg_iou_thresh_high: a proposal at IoU 0.6 is a negative
    gt = np.float32([[[0, 0, 10, 10]]])
    rois = np.float32([[[0, 0, 10, 6], [30, 30, 40, 40]]])
    _, samples, _ = run(RCNNTargetSampler(1, 2, 4, 0.7, 1., 1), rois,
                        np.ones((1, 2, 1), 'float32'), gt)
    assert_array_equal(samples, [[1, -1, -1, 0]])
