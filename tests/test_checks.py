"""Argument and shape checks (gluonmine/_checks.py) and the SelectionBlock base that runs them."""
import numpy as np
import pytest
from mxnet import autograd, nd
from numpy.testing import assert_array_equal

from gluonmine import (HardExampleMiner, HardNegativeMiner, OHEMSampler, QuotaSampler,
                       _checks)
from gluonmine._block import SelectionBlock
from gluonmine.losses import MultiBoxLoss


@pytest.mark.parametrize('value', [True, False, float('nan'), '0.5', None])
def test_check_number_refuses_what_is_not_a_real_number(value):
    # a bool is an Integral to Python, and NaN passes every range comparison
    with pytest.raises(ValueError, match='pos_ratio must be a real number'):
        _checks.check_number('pos_ratio', value, 0., 1.)
    with pytest.raises(ValueError, match='neg_pos_ratio'):
        HardNegativeMiner(neg_pos_ratio=value)
    with pytest.raises(ValueError, match='pos_ratio'):
        QuotaSampler(pos_ratio=value)


@pytest.mark.parametrize('make, name', [
    (lambda v: HardNegativeMiner(neg_pos_ratio=v), 'neg_pos_ratio'),
    (lambda v: OHEMSampler(v), 'ratio'), (lambda v: OHEMSampler(3, thresh=-v), 'thresh'),
    (lambda v: HardExampleMiner(max_negatives_per_positive=v), 'max_negatives_per_positive'),
    (lambda v: MultiBoxLoss(negative_mining_ratio=v), 'negative_mining_ratio'),
])
def test_a_number_beyond_float32_is_refused_not_made_infinite(make, name):
    # 1e39 is inf in float32: a ratio of inf times no positives is NaN, and NaN keeps none
    with pytest.raises(ValueError, match=name + " must be within float32's range"):
        make(1e39)
    make(3.4e38)                                                        # in range: taken


def test_check_same_compares_the_axes_named():
    # (B, N) scores against (N, 4) boxes: axis 1 of the first, axis 0 of the second
    scores, boxes = nd.zeros((2, 3)), nd.zeros((3, 4))
    _checks.check_same('scores', scores, 1, 'boxes', boxes, 0)
    with pytest.raises(ValueError, match=r'scores has shape \(2, 3\) and boxes has shape '
                                         r'\(4, 4\): their axes 1 and 0 must match'):
        _checks.check_same('scores', scores, 1, 'boxes', nd.zeros((4, 4)), 0)


def test_padding_if_empty_gives_one_padding_ground_truth():
    # boxes (B, 0, 4) -> one row of -1 an image; IoUs (B, N, 0) -> one column of 0
    boxes = _checks.padding_if_empty(nd.array(np.zeros((2, 0, 4)), dtype='float16'))
    assert boxes.shape == (2, 1, 4) and boxes.dtype == np.float16
    assert_array_equal(boxes.asnumpy(), -np.ones((2, 1, 4)))
    ious = _checks.padding_if_empty(nd.array(np.ones((2, 3, 0))), axis=2, value=0.)
    assert_array_equal(ious.asnumpy(), np.zeros((2, 3, 1)))
    present = nd.ones((2, 1, 4))
    assert _checks.padding_if_empty(present) is present


class _Spy(SelectionBlock):
    """Records the autograd state its checks and its forward pass run in."""

    def __init__(self):
        super(_Spy, self).__init__()
        self.states = []

    def check_inputs(self, *args):
        self.states.append((autograd.is_recording(), autograd.is_training()))
        return args

    def hybrid_forward(self, F, x):  # pylint: disable=arguments-differ
        return x * 2


def test_selection_runs_unrecorded_in_the_callers_mode():
    # recording is paused (outputs are constants), training mode follows the caller's
    spy, x = _Spy(), nd.ones((1, 3))
    x.attach_grad()
    with autograd.record():
        spy(x)
    with autograd.record(train_mode=False):
        spy(x)
    with autograd.train_mode():
        spy(x)
    spy(x)
    assert spy.states == [(False, True), (False, False), (False, True), (False, False)]
