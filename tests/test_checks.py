"""Argument and shape checks (gluonmine/_checks.py) and the SelectionBlock base that runs them."""
import re

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd
from numpy.testing import assert_array_equal

from gluonmine import (HardExampleMiner, HardNegativeMiner, OHEMSampler, QuotaSampler,
                       RPNTargetGenerator, _checks)
from gluonmine._block import SelectionBlock
from gluonmine.losses import MultiBoxLoss, RCNNHardExampleLoss
from test_reliability import GOOD


@pytest.mark.parametrize('value', [True, False, float('nan'), '0.5', None])
def test_check_number_refuses_what_is_not_a_real_number(value):
    # a bool is an Integral to Python, and NaN passes every range comparison
    with pytest.raises(ValueError, match='pos_ratio must be a real number'):
        _checks.check_number('pos_ratio', value, 0., 1.)
    with pytest.raises(ValueError, match='neg_pos_ratio'):
        HardNegativeMiner(neg_pos_ratio=value)
    with pytest.raises(ValueError, match='pos_ratio'):
        QuotaSampler(pos_ratio=value)


@pytest.mark.parametrize('make, name, value', [
    (lambda v: HardNegativeMiner(neg_pos_ratio=v), 'neg_pos_ratio', 1e39),
    (lambda v: OHEMSampler(v), 'ratio', 1e39), (lambda v: OHEMSampler(v), 'ratio', 1e-46),
    (lambda v: HardExampleMiner(max_negatives_per_positive=v), 'max_negatives_per_positive',
     1e39),
    (lambda v: MultiBoxLoss(negative_mining_ratio=v), 'negative_mining_ratio', 1e39),
    (lambda v: QuotaSampler(pos_iou_thresh=v), 'pos_iou_thresh', 1e-46),
    (lambda v: RPNTargetGenerator(stds=(1., 1., v, 1.)), 'stds', 1e-46),
    (lambda v: RPNTargetGenerator(stds=(v, 1., 1., 1.)), 'stds', 3.5e38),
    (lambda v: MultiBoxLoss(rho=v), 'rho', 1e-310),
    (lambda v: RCNNHardExampleLoss(lambd=v), 'lambd', 1e39),
])
def test_a_number_out_of_range_in_float32_is_refused(make, name, value):
    # the range holds for the float32 value the block computes with: 1e39 is inf there (a
    # ratio of inf times no positives is NaN, which keeps no negative), 1e-46 is 0 (a
    # positive threshold of 0 makes every candidate without overlap positive; a std of 0
    # makes box targets inf), and MXNet refuses a scalar of 1e-310 in the forward
    message = '{} must be in .*, got {}'.format(name, re.escape('{!r} ({!r} in float32)'.format(
        value, float(np.float32(value)))))
    with pytest.raises(ValueError, match=message):
        make(value)


def test_a_number_in_range_is_taken_as_its_float32():
    assert OHEMSampler(3.4e38)._ratio == float(np.float32(3.4e38))
    # both values must be in range: above 1 is refused even where float32 rounds it to 1
    with pytest.raises(ValueError, match=re.escape('got 1.000000000001 (1.0 in float32)')):
        QuotaSampler(pos_iou_thresh=1 + 1e-12)
    # no bound: 1e39 is inf, the largest IoU limit there is
    assert OHEMSampler(3, thresh=1e39)._thresh == float('inf')


def test_a_double_too_small_for_float32_is_taken_as_0():
    # MXNet refuses 1e-310 (a denormal double) as an operator's scalar: the block computes
    # with 0, the value a float32 computation has anyway
    gt, anchors, hw = GOOD['RPNTargetGenerator']
    inputs = [nd.array(gt), nd.array(anchors), nd.array(hw)]
    tiny = RPNTargetGenerator(num_sample=16, allowed_border=1e-310)
    assert tiny._allowed_border == 0.
    for got, want in zip(run(tiny, inputs), run(RPNTargetGenerator(num_sample=16), inputs)):
        assert_array_equal(got, want)
    inputs = [nd.array(x) for x in GOOD['MultiBoxLoss']]
    tiny = MultiBoxLoss(lambd=1e-310)
    assert tiny._lambd == 0.
    for got, want in zip(run(tiny, inputs), run(MultiBoxLoss(lambd=0.), inputs)):
        assert_array_equal(got, want)


def run(block, inputs):
    block.initialize()
    block.hybridize()
    mx.random.seed(0)
    return [x.asnumpy() for x in block(*inputs)]


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
