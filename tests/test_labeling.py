"""IoU bands, forced positives and matching, checked by hand on tiny matrices."""
import numpy as np
from mxnet import nd
from numpy.testing import assert_array_equal

from gluonmine import labeling

NAN = float('nan')


def rpn_labels(ious, clobber=False, min_forced_iou=0.):
    """RPN rule (pos 0.7, neg 0.3, forced positives) on a (N, M) list, as a (N,) array."""
    samples = labeling.label(nd, nd.array([ious]), 0.7, 0., 0.3, force_positives=True,
                             min_forced_iou=min_forced_iou, clobber_positives=clobber)
    return samples.asnumpy()[0]


def test_bands_without_forcing():
    # best IoU: 0.8 -> +1, 0.7 -> +1 (>=), 0.5 -> ignore, 0.3 -> ignore (not < 0.3),
    # 0.1 -> -1, 0 -> -1, all pairs unusable -> ignore
    ious = nd.array([[[0.8, 0.1], [0.7, 0.0], [0.5, 0.2], [0.3, 0.3], [0.1, 0.0],
                      [0.0, 0.0], [-1, -1]]])
    got = labeling.label(nd, ious, 0.7, 0., 0.3).asnumpy()
    assert_array_equal(got, [[1, 1, 0, 0, -1, -1, 0]])


def test_quota_band_lower_bound():
    # Fast R-CNN background band [0.1, 0.5): 0.05 is ignored, 0.1 and 0.49 are negative
    ious = nd.array([[[0.05], [0.1], [0.49], [0.5], [0.6]]])
    got = labeling.label(nd, ious, 0.5, 0.1, 0.5).asnumpy()
    assert_array_equal(got, [[0, -1, -1, 1, 1]])


def test_forced_positive_below_negative_threshold_stays_positive():
    # gt 0's best anchor (0.2) is below neg_iou_thresh: forced positive survives by default
    ious = [[0.2, 0.0], [0.1, 0.9], [0.0, 0.1]]
    assert_array_equal(rpn_labels(ious), [1, 1, -1])
    # with clobber_positives (GluonCV 0.10) the negative rule wins
    assert_array_equal(rpn_labels(ious, clobber=True), [-1, 1, -1])


def test_forced_positives_include_ties():
    # both anchors 0 and 2 reach gt 0's best IoU 0.4
    ious = [[0.4], [0.1], [0.4], [0.35]]
    assert_array_equal(rpn_labels(ious), [1, -1, 1, 0])


def test_gt_that_overlaps_nothing_forces_nothing():
    # gt 1 is padding (IoU 0 everywhere): anchors are labelled by gt 0 only
    ious = [[0.5, 0.0], [0.0, 0.0], [0.1, 0.0]]
    assert_array_equal(rpn_labels(ious), [1, -1, -1])
    # an image with no object at all: only negatives
    assert_array_equal(rpn_labels([[0.0, 0.0], [0.0, 0.0]]), [-1, -1])


def test_gt_with_only_unusable_pairs_forces_nothing():
    # gt 1 has IoU -1 with every anchor (all pairs unusable)
    ious = [[0.5, -1], [0.2, -1]]
    assert_array_equal(rpn_labels(ious), [1, -1])


def test_unusable_anchor_is_never_forced_or_negative():
    # anchor 1 is outside the image (-1 everywhere); the gt's best usable IoU is 0.1
    ious = [[0.1], [-1], [0.05]]
    assert_array_equal(rpn_labels(ious), [1, 0, -1])


def test_min_forced_iou():
    ious = [[0.2], [0.1]]
    assert_array_equal(rpn_labels(ious, min_forced_iou=0.2), [-1, -1])
    assert_array_equal(rpn_labels(ious, min_forced_iou=0.19), [1, -1])


def test_nan_pairs_count_as_unusable():
    # anchor 0: one NaN pair and 0.8 -> positive; anchor 1: NaN only -> ignored;
    # gt 0's best usable IoU is anchor 3's 0.5 (NaN never wins), so anchor 2 is negative
    ious = [[NAN, 0.8], [NAN, NAN], [0.1, 0.0], [0.5, 0.0]]
    assert_array_equal(rpn_labels(ious), [1, 0, -1, 1])


def test_match_is_first_argmax_over_usable_columns():
    # ties take the lower index; unusable and NaN columns never match; none usable -> 0
    ious = nd.array([[[0.2, 0.5, 0.5], [0.9, -1, 0.1], [NAN, 0.0, 0.3], [-1, -1, NAN]]])
    got = labeling.match(nd, ious[:, :, :]).asnumpy()
    assert_array_equal(got, [[1, 0, 2, 0]])
    ious = nd.array([[[-1, 0.2, 0.1]]])
    assert_array_equal(labeling.match(nd, ious).asnumpy(), [[1]])


def test_inputs_are_not_modified():
    ious = nd.array([[[0.2, NAN], [-1, 0.9]]])
    before = ious.asnumpy().copy()
    labeling.label(nd, ious, 0.7, 0., 0.3, force_positives=True)
    labeling.match(nd, ious)
    np.testing.assert_array_equal(ious.asnumpy(), before)
