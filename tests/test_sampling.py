"""sampling: the quota arithmetic and the random subsample every quota sampler shares."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon, nd
from numpy.testing import assert_array_equal

from conftest import assert_same_outputs
from gluonmine.sampling import max_positives, subsample


class Subsample(gluon.HybridBlock):
    """``subsample`` as a block, to run it eagerly, hybridized and exported."""

    def __init__(self, num_sample, max_pos, fill_negative=True):
        super(Subsample, self).__init__()
        self._args = (num_sample, max_pos, fill_negative)

    def hybrid_forward(self, F, samples):  # pylint: disable=arguments-differ
        return subsample(F, samples, *self._args)


def counts(samples):
    """Positives and negatives of each row: ((B,), (B,))."""
    return (samples > 0).sum(axis=1).tolist(), (samples < 0).sum(axis=1).tolist()


def labels(num_pos, num_neg, num_ignored=0):
    """One row: num_pos +1, then num_neg -1, then num_ignored 0."""
    return [1.] * num_pos + [-1.] * num_neg + [0.] * num_ignored


def test_max_positives_rounds_as_python_does():
    assert max_positives(256, 0.5) == 128 and max_positives(512, 0.25) == 128
    assert max_positives(5, 0.5) == 2 and max_positives(7, 0.5) == 4   # round half to even
    assert max_positives(128, 0.) == 0 and max_positives(128, 1.) == 128


def test_quotas_per_row_hand_checked():
    # num_sample 4, max_pos 2. Row 0: 3 positives, 5 negatives -> 2 + 2. Row 1: 1 positive,
    # 5 negatives -> negatives fill the slot: 1 + 3. Row 2: no positive -> 0 + 4. Row 3:
    # 1 positive, 1 negative, 6 ignored -> all kept, 1 + 1.
    samples = nd.array([labels(3, 5), labels(1, 5, 2), labels(0, 8), labels(1, 1, 6)])
    out = subsample(nd, samples, num_sample=4, max_pos=2).asnumpy()
    assert counts(out) == ([2, 1, 0, 1], [2, 3, 4, 1])
    before = samples.asnumpy()
    assert np.all((out == 0) | (out == before))     # a kept candidate keeps its label


def test_without_fill_negative_the_negative_quota_is_fixed():
    samples = nd.array([labels(3, 5), labels(1, 5, 2), labels(0, 8)])
    out = subsample(nd, samples, num_sample=4, max_pos=2, fill_negative=False).asnumpy()
    assert counts(out) == ([2, 1, 0], [2, 2, 2])


def test_a_zero_quota_keeps_none_of_that_label():
    samples = nd.array([labels(3, 5), labels(0, 8)])
    # no positive quota: negatives take every slot
    assert counts(subsample(nd, samples, 4, 0).asnumpy()) == ([0, 0], [4, 4])
    # all slots positive and no filling: no negative at all, even in a row without positives
    out = subsample(nd, samples, 4, 4, fill_negative=False).asnumpy()
    assert counts(out) == ([3, 0], [0, 0])
    # with filling, the slots positives leave go to negatives
    assert counts(subsample(nd, samples, 4, 4).asnumpy()) == ([3, 0], [1, 4])


def test_draws_differ_and_follow_the_seed():
    samples = nd.array([labels(10, 40)])
    mx.random.seed(3)
    first = subsample(nd, samples, 8, 4).asnumpy()
    second = subsample(nd, samples, 8, 4).asnumpy()
    mx.random.seed(3)
    again = subsample(nd, samples, 8, 4).asnumpy()
    assert_array_equal(first, again)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize('fill_negative', [True, False])
def test_eager_hybrid_exported_agree(modes, fill_negative):
    rng = np.random.RandomState(0)
    samples = nd.array(rng.choice([-1., 0., 1.], size=(3, 200), p=[0.6, 0.3, 0.1]))
    outputs = modes(lambda: Subsample(32, 8, fill_negative), [samples])
    assert_same_outputs(outputs)
    positives, negatives = counts(outputs['eager'][0])
    assert positives == [8, 8, 8] and negatives == [24] * 3
