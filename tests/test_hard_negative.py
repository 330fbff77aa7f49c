"""HardNegativeMiner: the SSD rule by hand, ties, NaN, large quotas, a NumPy reference."""
import math

import numpy as np
import pytest
from mxnet import nd
from numpy.testing import assert_array_equal

from conftest import assert_same_outputs, float32_quota, forward_without_host_sync
from gluonmine.hard_negative import HardNegativeMiner

NAN, INF = float('nan'), float('inf')


def reference(losses, samples, neg_pos_ratio=3, min_negatives=0):
    """Per image: positives, then the quota of finite negatives by (loss desc, index)."""
    out = np.where(samples > 0, 1., 0.).astype('float32')
    for b in range(samples.shape[0]):
        num_pos = int((samples[b] > 0).sum())
        quota = float32_quota(neg_pos_ratio, num_pos, min_negatives)
        negatives = [i for i in range(samples.shape[1])
                     if samples[b, i] < 0 and math.isfinite(losses[b, i])]
        for i in sorted(negatives, key=lambda i: (-losses[b, i], i))[:quota]:
            out[b, i] = -1
    return out


def mine(losses, samples, *args, **kwargs):
    return HardNegativeMiner(*args, **kwargs)(nd.array(losses), nd.array(samples)).asnumpy()


def test_keeps_positives_and_the_hardest_negatives():
    # image 0: 1 positive, 5 negatives -> the 3 hardest (losses 7, 5, 3) stay; the ignored
    #          loss-8 candidates stay ignored
    # image 1: no positive -> min_negatives=2 hardest stay; the ignored loss-9 entry stays 0
    samples = [[1, -1, -1, -1, -1, -1, 0, 0], [-1, -1, -1, 0, -1, -1, -1, -1]]
    losses = [[9, 1, 5, 3, 7, 2, 8, 8], [1, 2, 3, 9, 4, 5, 6, 7]]
    assert_array_equal(mine(losses, samples, 3, 2),
                       [[1, 0, -1, -1, -1, 0, 0, 0], [0, 0, 0, 0, 0, 0, -1, -1]])


def test_fractional_ratio_floors_and_minimum():
    # 3 positives x 0.5 = 1.5 -> 1 negative; 2 positives x 0.5 = 1 -> 1; the minimum lifts to 2
    samples = [[1, 1, 1, -1, -1, -1], [1, 1, -1, -1, -1, -1]]
    losses = [[0, 0, 0, 1, 3, 2], [0, 0, 5, 1, 3, 2]]
    assert_array_equal(mine(losses, samples, 0.5),
                       [[1, 1, 1, 0, -1, 0], [1, 1, -1, 0, 0, 0]])
    assert_array_equal(mine(losses, samples, 0.5, 2),
                       [[1, 1, 1, 0, -1, -1], [1, 1, -1, 0, -1, 0]])


def test_ties_keep_the_lower_index_on_a_long_row():
    # 4 positives -> 12 negatives of 5000 with equal loss: indices 4..15
    samples = np.concatenate([np.ones(4), -np.ones(4996)])[None]
    got = mine(np.ones((1, 5000)), samples)
    assert_array_equal(np.flatnonzero(got[0] < 0), np.arange(4, 16))


def test_nan_and_infinite_losses_never_kept_and_all_ignored():
    # image 0: the NaN and inf negatives would be the hardest; the next two are kept
    # image 1: everything ignored -> unchanged
    samples = [[1, -1, -1, -1, -1, -1], [0, 0, 0, 0, 0, 0]]
    losses = [[0, NAN, INF, 1, 3, 2], [1, 2, 3, 4, 5, 6]]
    assert_array_equal(mine(losses, samples, 2),
                       [[1, 0, 0, 0, -1, -1], [0, 0, 0, 0, 0, 0]])
    # a positive keeps its +1 whatever its loss
    assert_array_equal(mine([[NAN, 1]], [[1, -1]], 1), [[1, -1]])


def test_fewer_negatives_than_the_quota_keeps_them_all():
    assert_array_equal(mine([[1, 2, 3]], [[1, -1, -1]], 3), [[1, -1, -1]])



@pytest.mark.parametrize('kwargs', [dict(neg_pos_ratio=1e10), dict(neg_pos_ratio=3e38),
                                    dict(neg_pos_ratio=1e30, min_negatives=2 ** 40)])
def test_a_quota_beyond_any_row_keeps_every_negative(kwargs):
    # from 2**31 on, a count read as a C int index wrapped and kept the hardest one only
    losses = np.float32([[0.5, 0.7, 0.6, 0.5, 0.4, 0.6], [0.4, 0.9, 1.0, 0.4, 0.8, 0.5]])
    samples = np.float32([[1, -1, -1, -1, 0, -1], [-1] * 6])
    want = [[1, -1, -1, -1, 0, -1], [-1 if 'min_negatives' in kwargs else 0] * 6]
    assert_array_equal(mine(losses, samples, **kwargs), want)


def test_a_quota_one_past_the_fast_top_k_is_exact():
    # 257 negatives kept of 300: one more than the top-k cut (256) the miner tries first
    losses = np.random.RandomState(0).permutation(300).astype('float32')[None]
    got = mine(losses, -np.ones((1, 300), 'float32'), 3, min_negatives=257)
    assert_array_equal(got[0], np.where(losses[0] >= 300 - 257, -1, 0))


@pytest.mark.parametrize('positive', [0.01, 0.1, 0.4], ids=['small', 'past-top-k', 'most'])
def test_matches_the_reference_on_random_inputs(positive):
    # quotas from ~30 to past the top-k of 256 (the full-sort path) and past the negatives;
    # losses rounded to one decimal, so ties are everywhere
    rng = np.random.RandomState(0)
    samples = rng.choice([1., -1., 0.], size=(4, 3000), p=[positive, 0.9 - positive, 0.1])
    losses = np.round(rng.exponential(1., (4, 3000)), 1).astype('float32')
    losses[rng.rand(4, 3000) < 0.01] = NAN
    for ratio, minimum in [(3, 0), (1.5, 100)]:
        assert_array_equal(mine(losses, samples, ratio, minimum),
                           reference(losses, samples, ratio, minimum))


def test_modes_agree_without_host_sync_and_inputs_unchanged(modes):
    rng = np.random.RandomState(1)
    inputs = [nd.array(rng.rand(3, 900)), nd.array(rng.choice([1., -1., 0.], (3, 900)))]
    before = [x.asnumpy().copy() for x in inputs]
    results = modes(lambda: HardNegativeMiner(1.5, 10), inputs)
    assert_same_outputs(results)
    for out in forward_without_host_sync(HardNegativeMiner(1.5, 10), inputs):
        assert_array_equal(out[0], results['eager'][0])
    for x, want in zip(inputs, before):
        assert_array_equal(x.asnumpy(), want)


@pytest.mark.parametrize('kwargs, name', [
    (dict(neg_pos_ratio=-1), 'neg_pos_ratio'), (dict(neg_pos_ratio=INF), 'neg_pos_ratio'),
    (dict(min_negatives=-1), 'min_negatives'), (dict(min_negatives=1.5), 'min_negatives'),
])
def test_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        HardNegativeMiner(**kwargs)


def test_rejects_bad_input_shapes():
    for losses, samples, name in [(nd.zeros((2, 5, 1)), nd.zeros((2, 5)), 'losses'),
                                  (nd.zeros((2, 5)), nd.zeros((2,)), 'samples'),
                                  (nd.zeros((2, 5)), nd.zeros((2, 6)), 'losses')]:
        with pytest.raises(ValueError, match=name):
            HardNegativeMiner()(losses, samples)
