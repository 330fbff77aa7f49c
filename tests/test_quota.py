"""QuotaSampler: the RCNN-stage band rule and quotas."""
import numpy as np
import pytest
from mxnet import nd
from numpy.testing import assert_array_equal

from conftest import assert_same_outputs, forward_without_host_sync
from gluonmine import QuotaSampler


def test_bands_without_forced_positives():
    # best IoU 0.6 -> +1, 0.5 -> +1, 0.45 -> -1, 0.1 -> -1, 0.05 -> ignore (below bg_lo 0.1),
    # a gt's best anchor at 0.3 is NOT forced; unusable -> ignore
    ious = nd.array([[[0.6, 0.], [0.5, 0.], [0.45, 0.], [0.1, 0.], [0.05, 0.],
                      [0., 0.3], [-1, -1]]])
    samples, matches = QuotaSampler(num_sample=100, neg_iou_thresh_low=0.1)(ious)
    assert_array_equal(samples.asnumpy(), [[1, 1, -1, -1, 0, -1, 0]])
    assert_array_equal(matches.asnumpy(), [[0, 0, 0, 0, 0, 1, 0]])


def test_quotas_and_fill_negative():
    # 40 positives and 200 negatives; num_sample 128, pos_ratio 0.25 -> 32 + 96
    ious = nd.array([np.concatenate([np.full((40, 1), 0.7), np.full((200, 1), 0.2)])])
    samples = QuotaSampler()(ious)[0].asnumpy()
    assert ((samples > 0).sum(), (samples < 0).sum()) == (32, 96)
    # 5 positives: negatives fill up to 123, or stay at 96 without fill_negative
    ious = nd.array([np.concatenate([np.full((5, 1), 0.7), np.full((200, 1), 0.2)])])
    for fill, want in [(True, 123), (False, 96)]:
        samples = QuotaSampler(fill_negative=fill)(ious)[0].asnumpy()
        assert ((samples > 0).sum(), (samples < 0).sum()) == (5, want)


def test_modes_agree_and_never_sync(modes):
    ious = nd.array((np.random.RandomState(0).rand(2, 300, 5) ** 4).astype("float32"))
    assert_same_outputs(modes(lambda: QuotaSampler(num_sample=64), [ious]))
    for samples, _ in forward_without_host_sync(QuotaSampler(num_sample=64), [ious]):
        assert_array_equal((samples != 0).sum(axis=1), [64, 64])


@pytest.mark.parametrize('kwargs, name', [
    (dict(num_sample=0), 'num_sample'), (dict(pos_ratio=-0.1), 'pos_ratio'),
    (dict(pos_iou_thresh=0.4), 'neg_iou_thresh_high'),
    (dict(neg_iou_thresh_low=0.6), 'neg_iou_thresh_low'),
    (dict(neg_iou_thresh_low=-0.1), 'neg_iou_thresh_low'),
    (dict(pos_iou_thresh=2), 'pos_iou_thresh'),
    # the lower bound is checked against the negative band's top, not against pos_iou_thresh
    (dict(pos_iou_thresh=0.7, neg_iou_thresh_high=0.3, neg_iou_thresh_low=0.5),
     'neg_iou_thresh_low'),
])
def test_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        QuotaSampler(**kwargs)
