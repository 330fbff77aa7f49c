"""Row-wise primitives: hand-checked cases, ties, N < k, NaN, symbolic use."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import nd
from numpy.testing import assert_array_equal

from gluonmine import _ops

INF = float('inf')


def test_col_max_skips_nan_and_reduces_the_middle_axis():
    x = nd.array([[[0.1, np.nan], [0.5, np.nan], [0.2, np.nan]]])          # (1, 3, 2)
    got = _ops.col_max(nd, x).asnumpy()
    assert got[0, 0] == np.float32(0.5)
    assert got[0, 1] < 0                                                    # no number: negative


def test_row_any_counts_ones_in_the_last_axis():
    mask = nd.array([[[0, 0, 1], [0, 0, 0]], [[1, 1, 1], [0, 1, 0]]])
    assert_array_equal(_ops.row_any(nd, mask).asnumpy(), [[1, 0], [1, 1]])


def test_row_sum_is_exact_for_masks():
    mask = nd.array(np.random.RandomState(1).rand(3, 1000) > 0.3)
    assert_array_equal(_ops.row_sum(nd, mask).asnumpy()[:, 0], mask.asnumpy().sum(axis=1))


def test_masked_argmax_lowest_index_and_empty_rows():
    # row 0: the maximum 0.5 is tied at columns 1 and 2 -> 1
    # row 1: column 0 is the largest but invalid -> column 2
    # row 2: nothing valid (one NaN) -> 0 with value -inf
    x = nd.array([[[0.1, 0.5, 0.5], [0.9, 0.2, 0.3], [np.nan, 0.1, 0.2]]])
    valid = nd.array([[[1, 1, 1], [0, 1, 1], [0, 0, 0]]])
    index, value = _ops.masked_argmax(nd, x, valid)
    assert_array_equal(index.asnumpy(), [[1, 2, 0]])
    assert_array_equal(value.asnumpy(), np.float32([[0.5, 0.3, -INF]]))


def test_spread_repeats_along_a_new_axis():
    x = nd.array([[1, 0, 2]])
    assert_array_equal(_ops.spread(nd, x, 4).asnumpy(), np.repeat([[1, 0, 2]], 4, 0).T[None])


def test_gather_rows_and_scatter_top_roundtrip():
    x = nd.arange(24).reshape((2, 4, 3))                                   # (B, L, 3)
    index = nd.array([[3, 0], [1, 2]], dtype='int64')
    assert_array_equal(_ops.gather_rows(nd, x, index, 2).asnumpy(),
                       x.asnumpy()[[[0, 0], [1, 1]], [[3, 0], [1, 2]]])
    values = nd.array([[7, 8], [9, 0]])                                     # 0 where not taken
    got = _ops.scatter_top(nd, values, index, nd.zeros((2, 4)), 2).asnumpy()
    assert_array_equal(got, [[8, 0, 0, 7], [0, 9, 0, 0]])


# keys: image 0 has a three-way tie at 3 and an invalid 7; image 1 is distinct
KEYS = nd.array([[5, 3, 3, 3, 1, 7], [1, 2, 3, 4, 5, 6]])
VALID = nd.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])


@pytest.mark.parametrize('mask_fn', [_ops.topk_mask, _ops.rank_mask])
def test_masks_keep_exact_per_row_counts(mask_fn):
    for count, want in [([2, 1], [2, 1]), ([0, 6], [0, 3]), ([9, 9], [3, 3])]:
        mask, taken = mask_fn(nd, KEYS, VALID, 3, nd.array(count).reshape((-1, 1)))
        assert_array_equal(mask.asnumpy().sum(axis=1), want)
        assert_array_equal(taken.asnumpy()[:, 0], want)
        assert not (mask.asnumpy() * (1 - VALID.asnumpy())).any()


def test_topk_mask_takes_the_largest_keys():
    mask, _ = _ops.topk_mask(nd, KEYS, VALID, 3, nd.array([[1], [2]]))
    assert_array_equal(mask.asnumpy(), [[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]])


def test_rank_mask_breaks_ties_by_lower_index():
    # count 2 in image 0: 5 then one of the three 3s -> the one at index 1
    mask, _ = _ops.rank_mask(nd, KEYS, VALID, 3, nd.array([[2], [2]]))
    assert_array_equal(mask.asnumpy(), [[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]])
    # a long row of equal keys (where MXNet's top-k order is arbitrary): lowest indices win
    keys = nd.zeros((2, 5000))
    mask, _ = _ops.rank_mask(nd, keys, nd.ones_like(keys), 64, nd.array([[10], [64]]))
    assert_array_equal(np.nonzero(mask.asnumpy()[0])[0], np.arange(10))
    assert_array_equal(np.nonzero(mask.asnumpy()[1])[0], np.arange(64))


@pytest.mark.parametrize('mask_fn', [_ops.topk_mask, _ops.rank_mask])
def test_masks_with_fewer_candidates_than_k_and_nan_keys(mask_fn):
    keys = nd.array([[np.nan, 2, 1], [-INF, np.nan, np.nan]])
    mask, taken = mask_fn(nd, keys, nd.ones_like(keys), 8)
    assert_array_equal(mask.asnumpy(), [[0, 1, 1], [0, 0, 0]])
    assert_array_equal(taken.asnumpy()[:, 0], [2, 0])


def test_random_subset_is_exact_and_within_eligible():
    eligible = nd.array(np.random.RandomState(3).rand(50, 40) > 0.5)
    mask, taken = _ops.random_subset(nd, eligible, 10, count=nd.array([[7]] * 50))
    m, e = mask.asnumpy(), eligible.asnumpy()
    assert_array_equal(m.sum(axis=1), np.minimum(e.sum(axis=1), 7))
    assert not (m * (1 - e)).any()
    assert_array_equal(taken.asnumpy()[:, 0], m.sum(axis=1))


def test_random_subset_follows_mx_random_seed():
    eligible = nd.ones((4, 100))
    mx.random.seed(11)
    first, _ = _ops.random_subset(nd, eligible, 5)
    mx.random.seed(11)
    again, _ = _ops.random_subset(nd, eligible, 5)
    other, _ = _ops.random_subset(nd, eligible, 5)
    assert_array_equal(first.asnumpy(), again.asnumpy())
    assert (first.asnumpy() != other.asnumpy()).any()


def test_primitives_run_symbolically():
    class Block(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, keys, valid, count):
            ranked, _ = _ops.rank_mask(F, keys, valid, 3, count)
            top, _ = _ops.topk_mask(F, keys, valid, 3, count)
            return ranked, top
    block = Block()
    eager = [o.asnumpy() for o in block(KEYS, VALID, nd.array([[2], [1]]))]
    block.hybridize()
    hybrid = [o.asnumpy() for o in block(KEYS, VALID, nd.array([[2], [1]]))]
    for got, want in zip(hybrid, eager):
        assert_array_equal(got, want)
