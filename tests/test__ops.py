"""Row-wise primitives: hand-checked cases, ties, N < k, NaN, symbolic use."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import nd
from numpy.testing import assert_array_equal

from conftest import both, errno_left_at_erange, no_host_sync
from gluonmine import _ops

NAN, INF = float('nan'), float('inf')


@pytest.mark.parametrize('value', [2.5, -INF, INF, NAN])
def test_full_like_fills_any_value_whatever_errno_was_left(value):
    # MXNet reads a scalar argument of +inf as out of range while errno is ERANGE
    x = np.arange(6, dtype='float32').reshape(2, 3)
    with errno_left_at_erange():
        got = both(lambda F, x: _ops.full_like(F, x, value), x)[0]
    assert got.dtype == np.float32
    assert_array_equal(got, np.full((2, 3), value, 'float32'))


@pytest.mark.parametrize('value', [0.5, -INF, INF])
def test_at_least_is_x_at_or_above_any_value_whatever_errno_was_left(value):
    x = np.float32([[-INF, 0., 0.5, 1., INF, NAN]])
    with errno_left_at_erange():
        got = both(lambda F, x: _ops.at_least(F, x, value), x)[0]
    assert_array_equal(got, x >= value)


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


def test_gather_rows_any_layout_and_fill():
    x = nd.arange(24).reshape((2, 4, 3))                                   # (B, L, 3)
    index = nd.array([[3, 0], [1, 2]], dtype='int64')
    want = x.asnumpy()[[[0, 0], [1, 1]], [[3, 0], [1, 2]]]
    assert_array_equal(_ops.gather_rows(nd, x, index).asnumpy(), want)
    assert_array_equal(_ops.gather_rows(nd, x.transpose((1, 0, 2)), index,
                                        image_axis=1).asnumpy(), want)
    # -1 picks the fill, on 2-D and 3-D inputs
    index = nd.array([[3, -1], [-1, 2]])
    got = _ops.gather_rows(nd, x, index, fill=-7).asnumpy()
    assert_array_equal(got[0, 1], [-7] * 3) and assert_array_equal(got[0, 0], want[0, 0])
    assert_array_equal(_ops.gather_rows(nd, x[:, :, 0], index, fill=-7).asnumpy(),
                       [[9, -7], [-7, 18]])


def test_scatter_top_writes_taken_values_only():
    # image 0 takes both picks; image 1 takes one, its other pick (index 9) is padding
    values = nd.array([[[7, 7], [8, 8]], [[9, 9], [5, 5]]])                # (B, K, 2)
    index = nd.array([[3, 0], [1, 9]], dtype='int64')
    take = nd.array([[1, 1], [1, 0]])
    got = _ops.scatter_top(nd, values, index, take, nd.zeros((2, 4, 2)), width=2).asnumpy()
    assert_array_equal(got[..., 0], [[8, 0, 0, 7], [0, 9, 0, 0]])
    assert_array_equal(got[..., 1], got[..., 0])


def test_scatter_top_with_more_picks_than_candidates():
    # K = 3 picks into N = 2 candidates: one taken, the others are padding picks
    values = np.float32([[[4, 5], [6, 7], [8, 9]]])                         # (1, 3, 2)
    index, take = np.float32([[1, 5, 0]]), np.float32([[1, 0, 0]])
    got = both(lambda F, v, i, t, l: _ops.scatter_top(F, v, i, t, l, width=2),
               values, index, take, np.zeros((1, 2, 2), 'float32'))
    assert_array_equal(got[0], [[[0, 0], [4, 5]]])
    got = both(_ops.scatter_top, values[..., 0], index, take, np.zeros((1, 2), 'float32'))
    assert_array_equal(got[0], [[0, 4]])


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
    both(lambda F, keys, valid, count: (_ops.rank_mask(F, keys, valid, 3, count)[0],
                                        _ops.topk_mask(F, keys, valid, 3, count)[0]),
         KEYS.asnumpy(), VALID.asnumpy(), np.float32([[2], [1]]))


def test_primitives_never_read_back_to_the_host():
    keys = nd.array(np.random.RandomState(4).rand(2, 50))
    with no_host_sync():
        _ops.count_mask(mx.nd, keys, nd.array([[3], [60]]), 4)
        _ops.stable_order(mx.nd, keys, keys > 0.5, 5)
        _ops.rank_mask(mx.nd, keys, keys > 0.5, 5, nd.array([[3], [60]]))
        _ops.random_subset(mx.nd, keys > 0.5, 5)
        mx.nd.waitall()


def test_finite_and_finite_rows():
    x = np.float32([[1, NAN, INF, -INF, 0]])
    assert_array_equal(both(_ops.finite, x)[0], [[1, 0, 0, 0, 1]])
    boxes = np.float32([[[0, 0, 1, 1], [0, NAN, 1, 1], [0, 0, INF, 1]]])
    assert_array_equal(both(_ops.finite_rows, boxes)[0], [[1, 0, 0]])


# ------------------------------------------------------------ stable_order

def test_stable_order_ties_in_column_order():
    keys = np.float32([[5, 3, 3, 3, 1, 7], [1, 2, 3, 4, 5, 6]])
    valid = np.float32([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    order = lambda k: both(lambda F, x, v: _ops.stable_order(F, x, v, k), keys, valid)[0]
    assert_array_equal(order(3), [[0, 1, 2], [5, 4, 3]])
    assert_array_equal(order(None), [[0, 1, 2, 3, 4, -1], [5, 4, 3, 2, 1, 0]])
    assert_array_equal(order(8), [[0, 1, 2, 3, 4, -1, -1, -1], [5, 4, 3, 2, 1, 0, -1, -1]])
    assert_array_equal(order(1), [[0], [5]])


def test_stable_order_on_a_long_row_of_few_values():
    rng = np.random.RandomState(1)
    keys = rng.randint(0, 4, (2, 4000)).astype('float32')
    want = np.argsort(-keys, axis=1, kind='stable')
    got = both(lambda F, x, v: _ops.stable_order(F, x, v, None), keys, np.ones_like(keys))
    assert_array_equal(got[0], want)
    got = both(lambda F, x, v: _ops.stable_order(F, x, v, 50), keys, np.ones_like(keys))
    assert_array_equal(got[0], want[:, :50])


def test_gather_rows_clips_indices_outside_the_row():
    # without fill, -1 and -2 pick entry 0 and 5, 9 (past L = 4) entry 3: clipped, where
    # MXNet's gather_nd alone would count negative indices from the row's end
    x = np.float32([[0, 1, 2, 3], [4, 5, 6, 7]])
    got = both(_ops.gather_rows, x, np.float32([[-1, 5], [-2, 9]]))[0]
    assert_array_equal(got, [[0, 3], [4, 7]])


def test_gather_rows_with_float_indices():
    x = np.float32([[10, 11, 12], [20, 21, 22]])
    got = both(_ops.gather_rows, x, np.float32([[2, 0], [1, 1]]))[0]
    assert_array_equal(got, [[12, 10], [21, 21]])


# ------------------------------------------------------------ count_mask

def count_mask(keys, count, fast_k):
    return both(lambda F, x, c: _ops.count_mask(F, x, c, fast_k), np.float32(keys),
                np.float32(count).reshape(-1, 1))[0]


def test_count_mask_exact_counts_ties_and_empty_rows():
    keys = [[5, 3, 3, 3, 1, -INF], [1, 2, 3, 4, 5, 6], [-INF] * 6]
    # counts within the top-k: the 3s tie, the lower indices win
    assert_array_equal(count_mask(keys, [2, 1, 3], 3),
                       [[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1], [0] * 6])
    # count 0, and more than the valid entries
    assert_array_equal(count_mask(keys, [0, 9, 0], 3), [[0] * 6, [1] * 6, [0] * 6])
    # counts above fast_k = 2 take the full-sort path; row 1 (count 1) does not
    assert_array_equal(count_mask(keys, [3, 1, 4], 2),
                       [[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1], [0] * 6])


def test_count_mask_counts_beyond_the_row_keep_every_valid_entry():
    # pick reads its index as a C int: from 2**31 on the index wrapped to the first column
    keys = [[5, 3, 3, 3, 1, -INF]] * 4
    assert_array_equal(count_mask(keys, [2 ** 31, 1e30, 3e38, INF], 2),
                       [[1, 1, 1, 1, 1, 0]] * 4)


@pytest.mark.parametrize('fast_k', [4, 256])
def test_count_mask_matches_a_stable_sort(fast_k):
    rng = np.random.RandomState(2)
    keys = np.round(rng.randn(5, 700), 1).astype('float32')
    keys[rng.rand(5, 700) < 0.2] = -INF
    count = np.float32([0, 3, 40, 300, 700])
    got = count_mask(keys, count, fast_k)
    for b in range(5):
        order = [i for i in np.argsort(-keys[b], kind='stable') if keys[b, i] > -INF]
        assert_array_equal(np.flatnonzero(got[b]), np.sort(order[:int(count[b])]))


# ------------------------------------------------------------ compact and index_mask

def test_compact_moves_kept_entries_forward():
    values = np.float32([[4, 5, 6, 7], [1, 2, 3, 4]])
    keep = np.float32([[0, 1, 0, 1], [0, 0, 0, 0]])
    assert_array_equal(both(_ops.compact, values, keep)[0],
                       [[5, 7, -1, -1], [-1, -1, -1, -1]])


def test_index_mask_from_index_lists():
    index = np.float32([[3, 0, -1], [-1, -1, -1], [4, 1, 2]])
    like = np.zeros((3, 5), 'float32')
    assert_array_equal(both(_ops.index_mask, index, like)[0],
                       [[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 1, 1, 0, 1]])
    # K larger than N
    assert_array_equal(both(_ops.index_mask, np.float32([[1, -1, -1, -1]]),
                            np.zeros((1, 2), 'float32'))[0], [[0, 1]])
