"""Greedy NMS on device: suppression order, ties, k, carried values, labels, stages."""
import mxnet as mx
import numpy as np
from mxnet import nd
from numpy.testing import assert_array_equal

from conftest import both, no_host_sync, random_boxes
from gluonmine import _nms

NAN, INF = float('nan'), float('inf')


# ------------------------------------------------------------ greedy_nms

# boxes 0, 1, 3 overlap (IoU(0, 1) = 0.81, IoU(0, 3) = 0.9, IoU(1, 3) = 0.73); 2 and 4 are apart
BOXES = np.float32([[[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9],
                     [50, 50, 60, 60]]])


def nms(scores, threshold, k=None, carry=(), labels=None, boxes=BOXES):
    def fn(F, s, b, *rest):
        if labels is not None:
            return _nms.greedy_nms(F, s, b, threshold, k, carry=rest[:-1],
                                   labels=rest[-1])
        return _nms.greedy_nms(F, s, b, threshold, k, carry=rest)
    return both(fn, np.float32(scores), boxes, *carry,
                *([] if labels is None else [np.float32(labels)]))


def test_greedy_nms_order_ties_and_suppression():
    # order 4 (3), 1 (2), 2 (2, tie: after 1), 0 (1), 3 (0.5); 0 and 3 fall to the kept 1
    index, score = nms([[1, 2, 2, 0.5, 3]], 0.7)
    assert_array_equal(index, [[4, 1, 2, -1, -1]])
    assert_array_equal(score, [[3, 2, 2, -1, -1]])
    # 0 first: it suppresses 1 and 3; 3 is not re-suppressed by the suppressed 1
    index, _ = nms([[5, 2, 2, 4, 3]], 0.85)
    assert_array_equal(index, [[0, 4, 1, 2, -1]])


def test_greedy_nms_k_carry_and_padding():
    # k = 2 stops after two keeps; k = 7 > N pads with -1; carried values follow their rows
    carry = [np.float32([[5, 6, 7, 8, 9]])]
    index, _, carried = nms([[1, 2, 2, 0.5, 3]], 0.7, k=2, carry=carry)
    assert_array_equal(index, [[4, 1]])
    assert_array_equal(carried, [[9, 6]])
    index, _, carried = nms([[1, 2, 2, 0.5, 3]], 0.7, k=7, carry=carry)
    assert_array_equal(index, [[4, 1, 2, -1, -1, -1, -1]])
    assert_array_equal(carried, [[9, 6, 7, -1, -1, -1, -1]])


def test_greedy_nms_skips_minus_infinity_and_nan_scores():
    # 1 (NaN) and 4 (-inf) are no candidates: they neither appear nor suppress 0
    index, _ = nms([[1, NAN, 2, 0.5, -INF]], 0.7)
    assert_array_equal(index, [[2, 0, -1, -1, -1]])


def test_greedy_nms_by_label():
    # labels 0, 1, 1, 1, 2: 0 survives 1 (other label); 3 falls to 1 (same label)
    index, _ = nms([[1, 2, 2, 0.5, 3]], 0.7, labels=[[0, 1, 1, 1, 2]])
    assert_array_equal(index, [[4, 1, 2, 0, -1]])
    # labels below zero are ordinary labels
    index, _ = nms([[1, 2, 2, 0.5, 3]], 0.7, labels=[[-1, -2, -2, -2, -3]])
    assert_array_equal(index, [[4, 1, 2, 0, -1]])


def greedy_reference(scores, boxes, threshold, k):
    """Plain greedy NMS of one row (NumPy IoU as box_nms computes it)."""
    def iou(a, b):
        w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)
    kept = []
    for i in sorted(np.flatnonzero(np.isfinite(scores)), key=lambda i: (-scores[i], i)):
        if len(kept) < k and all(iou(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(i)
    return kept + [-1] * (k - len(kept))


def test_greedy_nms_prefix_and_whole_row_stages_agree_with_the_reference():
    # image 0: 60 copies of one box rank first, so the prefix of 2k = 8 keeps one candidate
    # and the whole row is visited; image 1 is settled by its prefix
    rng = np.random.RandomState(0)
    boxes = np.stack([np.concatenate([np.tile([[0, 0, 9, 9]], (60, 1)),
                                      random_boxes(rng, 60, 500., 4., 8.) + 20]),
                      random_boxes(rng, 120, 500., 4., 8.)]).astype('float32')
    scores = np.float32([np.linspace(10, 1, 120), rng.permutation(120)])
    index, _ = nms(scores, 0.5, k=4, boxes=boxes)
    for b in range(2):
        assert_array_equal(index[b], greedy_reference(scores[b], boxes[b], 0.5, 4))
    assert_array_equal(index[0], [0, 60, 61, 62])


def test_box_nms_sorts_stably_on_a_long_row():
    # the property greedy_nms relies on for "equal scores: lower index first"
    n = 6000
    scores = np.random.RandomState(3).randint(0, 3, (2, n)).astype('float32')
    boxes = np.float32([[[10 * i, 0, 10 * i + 5, 5] for i in range(n)]] * 2)
    index = nms(scores, 0.5, boxes=boxes)[0]
    assert_array_equal(index, np.argsort(-scores, axis=1, kind='stable'))


def test_greedy_nms_never_reads_back_to_the_host():
    keys = nd.array(np.random.RandomState(4).rand(2, 50))
    with no_host_sync():
        _nms.greedy_nms(mx.nd, keys, nd.array(np.random.rand(2, 50, 4)), 0.5, 3)
        mx.nd.waitall()
