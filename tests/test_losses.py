"""Loss blocks that mine: SSD's multibox loss (GluonCV parity, devices) and the RCNN OHEM loss."""
import math

import mxnet as mx
import numpy as np
import pytest
from gluoncv.loss import SSDMultiBoxLoss as GluonCVMultiBoxLoss
from mxnet import autograd, gluon, nd
from numpy.testing import assert_allclose, assert_array_equal

from conftest import assert_same_outputs, forward_without_host_sync, no_host_sync, random_boxes
from gluonmine.hard_negative import HardNegativeMiner
from gluonmine.losses import (MultiBoxLoss, RCNNHardExampleLoss, SSDMultiBoxLoss, class_losses,
                              RHO_MIN, huber, positives_over_devices)
from gluonmine.ohem import HardExampleMiner

LN = math.log


def ssd_inputs(rng, images=2, anchors=300, classes=4, positive=0.05, ctx=None):
    """(cls_pred, box_pred, cls_target, box_target) as NDArrays, targets in [0, classes]."""
    target = np.where(rng.rand(images, anchors) < positive,
                      rng.randint(1, classes + 1, (images, anchors)), 0)
    arrays = [rng.randn(images, anchors, classes + 1), rng.randn(images, anchors, 4), target,
              rng.randn(images, anchors, 4)]
    return [nd.array(x, ctx=ctx or mx.cpu()) for x in arrays]


def as_lists(parts):
    """Per-device input tuples -> four lists, GluonCV's calling convention."""
    return [list(x) for x in zip(*parts)]


def assert_lists_close(got, want, rtol=1e-5, atol=1e-6):
    for got_list, want_list in zip(got, want):
        assert len(got_list) == len(want_list)
        for g, w in zip(got_list, want_list):
            assert g.context == w.context
            assert_allclose(g.asnumpy(), np.broadcast_to(w.asnumpy(), g.shape), rtol, atol)


# ---------------------------------------------------------------- SSD: by hand

def test_multibox_loss_by_hand():
    # one image, 2 classes (background + 1), ratio 2: the positive and the 2 hardest
    # negatives (losses ln 8 and ln 4) count; the ln 2 negative and the ignored anchor do not
    # anchor:      0 positive   1 neg ln4   2 neg ln2   3 neg ln8   4 ignored (huge logit)
    cls_pred = nd.array([[[0, 0], [0, LN(3)], [0, 0], [0, LN(7)], [0, 50]]])
    cls_target = nd.array([[1, 0, 0, 0, -1]])
    box_target = nd.zeros((1, 5, 4))
    box_pred = nd.array([[[0.5, -0.5, 2, 0]] + [[9, 9, 9, 9]] * 4])   # only the positive's count
    loss = MultiBoxLoss(negative_mining_ratio=2, lambd=0.5)
    total, cls_loss, box_loss = [x.asnumpy() for x in loss(cls_pred, box_pred, cls_target,
                                                             box_target)]
    # smooth L1 (rho 1): 0.125 + 0.125 + 1.5 + 0 = 1.75; one positive normalizes
    assert_allclose(cls_loss, [LN(2) + LN(4) + LN(8)], rtol=1e-5)
    assert_allclose(box_loss, [1.75], rtol=1e-6)
    assert_allclose(total, cls_loss + 0.5 * box_loss, rtol=1e-6)


class KeepLossAboveOne(gluon.HybridBlock):
    """A miner that trains the class loss of the candidates of loss above 1 only,
    positives included."""

    def hybrid_forward(self, F, losses, samples):  # pylint: disable=arguments-differ
        return F.where(losses > 1, samples, F.zeros_like(samples))


def test_multibox_class_loss_follows_the_miner_and_box_loss_every_positive():
    # anchors: 0 positive ln 2, 1 positive ln 4, 2 negative ln 4, 3 negative ln 2; the miner
    # drops 0 and 3 from the class loss; the box loss still covers both positives
    # (smooth L1 1.0 and 0.125); 2 positives normalize
    cls_pred = nd.array([[[0, 0], [LN(3), 0], [0, LN(3)], [0, 0]]])
    box_pred = nd.array([[[1.5, 0, 0, 0], [0.5, 0, 0, 0], [9, 9, 9, 9], [9, 9, 9, 9]]])
    out = MultiBoxLoss(miner=KeepLossAboveOne())(cls_pred, box_pred, nd.array([[1, 1, 0, 0]]),
                                                  nd.zeros((1, 4, 4)))
    total, cls_loss, box_loss = [x.asnumpy() for x in out]
    assert_allclose(cls_loss, [(LN(4) + LN(4)) / 2], rtol=1e-5)
    assert_allclose(box_loss, [(1. + 0.125) / 2], rtol=1e-6)
    assert_allclose(total, cls_loss + box_loss, rtol=1e-6)


def test_class_losses_stay_finite_for_confident_mistakes():
    # a logit 200 above the target's: the loss is 200, not -log(0) = inf (log_softmax)
    got = class_losses(nd, nd.array([[[0, 200], [200, 0], [0, 0]]]), nd.array([[0, 1, -1]]))
    assert_allclose(got.asnumpy(), [[200, 200, 0]], rtol=1e-6)


def test_huber_is_mxnets():
    x = nd.array(np.linspace(-3, 3, 61))
    for rho in (1., 1. / 9):
        want = gluon.loss.HuberLoss(rho=rho)(x.reshape((-1, 1)), nd.zeros((61, 1)))
        assert_allclose(huber(nd, x, rho).asnumpy(), want.asnumpy(), rtol=1e-6)


# ---------------------------------------------------------------- SSD: GluonCV parity

@pytest.mark.parametrize('args', [dict(), dict(negative_mining_ratio=2, min_hard_negatives=5),
                                  dict(rho=0.5, lambd=2.)], ids=['defaults', 'ratio2-min5',
                                                                  'rho-lambd'])
def test_multibox_equals_gluoncv_on_one_device(args):
    rng = np.random.RandomState(0)
    inputs = ssd_inputs(rng)
    want = GluonCVMultiBoxLoss(**args)(*inputs)
    for hybridize in (False, True):
        ours = SSDMultiBoxLoss(**args)
        if hybridize:
            ours.hybridize()
        assert_lists_close(ours(*inputs), want)


def test_multibox_gradients_equal_gluoncvs():
    # the same losses reach the predictions: only positives and kept negatives get gradient
    inputs = ssd_inputs(np.random.RandomState(1))
    grads = []
    for loss in (GluonCVMultiBoxLoss(), SSDMultiBoxLoss()):
        cls_pred, box_pred = inputs[0].copy(), inputs[1].copy()
        cls_pred.attach_grad()
        box_pred.attach_grad()
        with autograd.record():
            sums = loss(cls_pred, box_pred, inputs[2], inputs[3])[0]
        autograd.backward(sums)
        grads.append([cls_pred.grad.asnumpy(), box_pred.grad.asnumpy()])
    for got, want in zip(grads[1], grads[0]):
        assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    touched = np.abs(grads[1][0]).sum(axis=-1) > 0
    assert touched.sum() == 4 * (inputs[2].asnumpy() > 0).sum()   # positives + 3 each


def test_multibox_equals_gluoncv_across_contexts():
    # three "devices" with 2, 0 and many positives: every device normalizes by the total
    rng = np.random.RandomState(2)
    contexts = [mx.cpu(0), mx.cpu(1), mx.cpu(2)]
    parts = [ssd_inputs(rng, positive=p, ctx=c) for p, c in zip([0.004, 0., 0.1], contexts)]
    inputs = as_lists(parts)
    want = GluonCVMultiBoxLoss()(*inputs)
    ours = SSDMultiBoxLoss()
    ours.hybridize()
    assert_lists_close(ours(*inputs), want)
    totals = positives_over_devices(inputs[2])
    expected = sum((t.asnumpy() > 0).sum() for t in inputs[2])
    assert [t.context for t in totals] == contexts
    assert [t.asscalar() for t in totals] == [expected] * 3


def test_multibox_without_positives_is_zero_and_with_minimum_is_gluoncvs():
    rng = np.random.RandomState(3)
    contexts = [mx.cpu(0), mx.cpu(1)]
    inputs = as_lists([ssd_inputs(rng, positive=0., ctx=c) for c in contexts])
    for losses in SSDMultiBoxLoss()(*inputs):
        for x in losses:                                  # (B,) zeros, not GluonCV's (1,)
            assert x.shape == (2,) and not x.asnumpy().any()
    # min_hard_negatives: each image keeps its 4 hardest negatives, normalized by 1
    assert_lists_close(SSDMultiBoxLoss(min_hard_negatives=4)(*inputs),
                       GluonCVMultiBoxLoss(min_hard_negatives=4)(*inputs))


def test_multibox_takes_a_miner():
    inputs = ssd_inputs(np.random.RandomState(4))
    want = MultiBoxLoss(negative_mining_ratio=1)(*inputs)
    got = MultiBoxLoss(miner=HardNegativeMiner(1))(*inputs)
    for g, w in zip(got, want):
        assert_array_equal(g.asnumpy(), w.asnumpy())


def test_multibox_ignores_minus_one_targets():
    # an ignored anchor with a huge loss is neither a negative nor a loss term
    cls_pred = nd.array([[[0, 0], [50, 0], [0, 0]]])
    kept = MultiBoxLoss()(cls_pred, nd.zeros((1, 3, 4)), nd.array([[1, -1, 0]]),
                          nd.zeros((1, 3, 4)))[1]
    assert_allclose(kept.asnumpy(), [2 * LN(2)], rtol=1e-5)


def test_multibox_modes_and_no_host_sync(modes):
    inputs = ssd_inputs(np.random.RandomState(5))
    count = nd.array([7.])
    assert_same_outputs(modes(MultiBoxLoss, inputs))
    assert_same_outputs(modes(MultiBoxLoss, inputs + [count]))
    eager, hybrid = forward_without_host_sync(MultiBoxLoss(), inputs + [count])
    for e, h in zip(eager, hybrid):
        assert_array_equal(e, h)
    contexts = [mx.cpu(0), mx.cpu(1)]
    lists = as_lists([ssd_inputs(np.random.RandomState(6), ctx=c) for c in contexts])
    loss = SSDMultiBoxLoss()
    for hybridize in (False, True):
        if hybridize:
            loss.hybridize()
        with no_host_sync():
            out = loss(*lists)
            mx.nd.waitall()
        assert [x.context for x in out[0]] == contexts


# ---------------------------------------------------------------- RCNN OHEM loss

def rcnn_inputs(rng, images=2, rois=60, classes=3, labelled=0.9, size=100.):
    """Random RCNN head outputs and GluonCV-style targets, (B, N, ...) NDArrays."""
    cls_target = np.where(rng.rand(images, rois) < 0.6, 0.,
                          rng.randint(1, classes + 1, (images, rois))).astype('float32')
    cls_target[rng.rand(images, rois) > labelled] = -1
    box_mask = np.zeros((images, rois, classes, 4), 'float32')
    for b, i in zip(*np.nonzero(cls_target > 0)):
        box_mask[b, i, int(cls_target[b, i]) - 1] = 1
    arrays = [rng.randn(images, rois, classes + 1), rng.randn(images, rois, classes, 4),
              cls_target, rng.randn(images, rois, classes, 4), box_mask,
              np.stack([random_boxes(rng, rois, size) for _ in range(images)])]
    return [nd.array(x) for x in arrays]


def per_roi_losses(cls_pred, box_pred, cls_target, box_target, box_mask):
    """NumPy per-RoI cross-entropy and masked smooth L1 (rho 1)."""
    logits = cls_pred - cls_pred.max(axis=-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    target = np.maximum(cls_target, 0).astype(int)
    cls = np.where(cls_target >= 0, -np.take_along_axis(log_p, target[..., None], -1)[..., 0], 0)
    diff = np.abs(box_pred - box_target)
    box = (np.where(diff > 1, diff - 0.5, 0.5 * diff ** 2) * box_mask).sum(axis=(2, 3))
    return cls, box


def test_rcnn_loss_by_hand():
    # one image, one class, 4 RoIs far apart (no NMS effect), 2 mined: RoI 3 (negative,
    # ln 8 = 2.08) and RoI 0 (positive, ln 2 + 1 = 1.69) beat RoI 1 (negative, ln 4 = 1.39);
    # RoI 2 is ignored however hard
    cls_pred = nd.array([[[0, 0], [0, LN(3)], [0, 50], [0, LN(7)]]])
    cls_target = nd.array([[1, 0, -1, 0]])
    box_pred = nd.zeros((1, 4, 1, 4))
    box_pred[0, 0, 0, 0] = 1.5                                  # smooth L1 1.0
    box_mask = nd.zeros((1, 4, 1, 4))
    box_mask[0, 0] = 1
    rois = nd.array([[[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]]])
    loss = RCNNHardExampleLoss(HardExampleMiner(2, 0.7, 'both', 1., 1.))
    total, cls_loss, box_loss, indices, mask = [x.asnumpy() for x in loss(
        cls_pred, box_pred, cls_target, nd.zeros((1, 4, 1, 4)), box_mask, rois)]
    assert_array_equal(indices, [[3, 0]])
    assert_array_equal(mask, [[1, 0, 0, 1]])
    assert_allclose(cls_loss, [(LN(2) + LN(8)) / 2], rtol=1e-5)   # 2 selected RoIs
    assert_allclose(box_loss, [1. / 2], rtol=1e-6)
    assert_allclose(total, cls_loss + box_loss, rtol=1e-6)


def test_rcnn_loss_nms_suppresses_duplicates():
    # RoIs 0 (ln 8) and 1 (ln 4) are the same box: 1 is suppressed, 2 (ln 2) comes next
    cls_pred = nd.array([[[0, LN(7)], [0, LN(3)], [0, 0]]])
    rois = nd.array([[[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]]])
    zeros = nd.zeros((1, 3, 1, 4))
    _, _, _, indices, _ = RCNNHardExampleLoss()(cls_pred, zeros, nd.array([[0, 0, 0]]), zeros,
                                                zeros, rois)
    assert_array_equal(indices.asnumpy()[:, :3], [[0, 2, -1]])



def test_rcnn_loss_default_miner_ranks_by_the_loss_it_trains():
    # lambd weights the box loss in the miner too: RoI 0 has cls ln(1 + e^2) = 2.13 and
    # no box loss, RoI 1 cls ln 2 = 0.69 and box loss 6; with lambd 0.2 (and the class
    # loss weighted 1), 0 is the harder: 2.13 > 0.69 + 1.2 (with lambd 1, or the class
    # loss weighted 0.5, 1 would be)
    cls_pred = nd.array([[[2, 0], [0, 0]]])
    box_pred = nd.zeros((1, 2, 1, 4))
    box_pred[0, 1] = 2                                          # smooth L1 1.5, 4 times
    rois = nd.array([[[0, 0, 10, 10], [20, 20, 30, 30]]])
    out = RCNNHardExampleLoss(lambd=0.2)(cls_pred, box_pred, nd.array([[1, 1]]),
                                         nd.zeros((1, 2, 1, 4)), nd.ones((1, 2, 1, 4)), rois)
    assert_array_equal(out[3].asnumpy()[0, :3], [0, 1, -1])


def test_rcnn_loss_default_miner_takes_64_rois_with_nms_at_0_7():
    # 70 negatives, losses falling with the index: RoI 1 overlaps RoI 0 at IoU 0.6 (kept),
    # RoI 2 at 0.8 (suppressed); the others are apart. 64 are selected: 0, 1, 3..64
    rois = np.float32([[20 * (i % 10), 20 * (i // 10), 20 * (i % 10) + 10,
                        20 * (i // 10) + 10] for i in range(70)])
    rois[1], rois[2] = [0, 0, 10, 6], [0, 0, 10, 8]
    cls_pred = nd.array(np.stack([np.zeros(70), np.linspace(5, 1, 70)], axis=-1)[None])
    zeros = nd.zeros((1, 70, 1, 4))
    mask = RCNNHardExampleLoss()(cls_pred, zeros, nd.zeros((1, 70)), zeros, zeros,
                                 nd.array(rois[None]))[4].asnumpy()
    assert_array_equal(np.flatnonzero(mask[0]), [0, 1] + list(range(3, 65)))


def test_rcnn_loss_gives_the_class_targets_to_the_miner_as_labels():
    # RoIs 0 (background, ln 8) and 1 (class 1, ln 4) are the same box: NMS by label keeps
    # both, plain NMS suppresses 1
    cls_pred = nd.array([[[0, LN(7)], [LN(3), 0], [0, 0]]])
    rois = nd.array([[[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]]])
    zeros = nd.zeros((1, 3, 1, 4))
    for by_label, want in [(True, [0, 1, 2]), (False, [0, 2, -1])]:
        miner = HardExampleMiner(3, 0.7, 'both', 1., 1., nms_by_label=by_label)
        loss = RCNNHardExampleLoss(miner)
        indices = loss(cls_pred, zeros, nd.array([[0, 1, 0]]), zeros, zeros, rois)[3]
        assert_array_equal(indices.asnumpy(), [want])


def test_rcnn_loss_of_a_batch_with_nothing_labelled_is_zero():
    # no labelled RoI: every loss 0 (divided by at least one RoI an image), not 0 / 0
    rois = nd.array(np.tile(np.float32([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]),
                            (2, 1, 1)))
    zeros = nd.zeros((2, 3, 1, 4))
    out = RCNNHardExampleLoss()(nd.zeros((2, 3, 2)), zeros, -nd.ones((2, 3)), zeros, zeros,
                                rois)
    for loss in out[:3]:
        assert_array_equal(loss.asnumpy(), [0, 0])


def test_rcnn_loss_equals_a_numpy_statement():
    inputs = rcnn_inputs(np.random.RandomState(7))
    miner = HardExampleMiner(16, 0.5, 'both', 1., 0.5)
    loss = RCNNHardExampleLoss(miner, lambd=0.5)
    total, cls_loss, box_loss, indices, mask = [x.asnumpy() for x in loss(*inputs)]
    cls, box = per_roi_losses(*[x.asnumpy() for x in inputs[:5]])
    samples = np.where(inputs[2].asnumpy() > 0, 1., np.where(inputs[2].asnumpy() == 0, -1., 0.))
    _, want_mask = [x.asnumpy() for x in miner(nd.array(cls), nd.array(box), inputs[5],
                                                 nd.array(samples))]
    assert_array_equal(mask, want_mask)
    assert (mask.sum(axis=1) == 16).all()
    per_image = mask.sum() / 2                     # the mean of a selected RoI, over 2 images
    assert_allclose(cls_loss, (cls * mask).sum(axis=1) / per_image, rtol=1e-5)
    assert_allclose(box_loss, (box * mask).sum(axis=1) / per_image, rtol=1e-5)
    assert_allclose(total, cls_loss + 0.5 * box_loss, rtol=1e-6)


def test_rcnn_loss_gradients_reach_selected_rois_only():
    inputs = rcnn_inputs(np.random.RandomState(8))
    cls_pred, box_pred = inputs[0], inputs[1]
    cls_pred.attach_grad()
    box_pred.attach_grad()
    loss = RCNNHardExampleLoss(HardExampleMiner(10))
    with autograd.record():
        total, _, _, _, mask = loss(*inputs)
    total.backward()
    mask = mask.asnumpy() > 0
    cls_touched = np.abs(cls_pred.grad.asnumpy()).sum(axis=-1) > 0
    box_touched = np.abs(box_pred.grad.asnumpy()).sum(axis=(2, 3)) > 0
    assert_array_equal(cls_touched, mask)
    assert not (box_touched & ~mask).any()
    assert (box_touched == (mask & (inputs[2].asnumpy() > 0))).all()


def test_rcnn_loss_box_rows_by_index():
    # GluonCV's layout: box rows are the positives first, in the order of ``indices``;
    # the loss equals the one on RoI-ordered rows
    rng = np.random.RandomState(9)
    inputs = rcnn_inputs(rng)
    order = np.stack([rng.permutation(60) for _ in range(2)])
    rows = [nd.array(np.take_along_axis(x.asnumpy(), order[:, :, None, None], axis=1))
            for x in inputs[1:2] + inputs[3:5]]
    loss = RCNNHardExampleLoss()
    want = loss(*inputs)
    got = loss(inputs[0], rows[0], inputs[2], rows[1], rows[2], inputs[5], nd.array(order))
    for g, w in zip(got, want):
        assert_allclose(g.asnumpy(), w.asnumpy(), rtol=1e-6)


def test_rcnn_loss_never_selects_nan_and_stays_finite():
    inputs = rcnn_inputs(np.random.RandomState(10))
    cls_pred = inputs[0].asnumpy()
    cls_pred[:, :5] = np.nan
    inputs[0] = nd.array(cls_pred)
    total, _, _, _, mask = RCNNHardExampleLoss()(*inputs)
    assert not mask.asnumpy()[:, :5].any()
    assert np.isfinite(total.asnumpy()).all()


def test_rcnn_loss_modes_and_no_host_sync(modes):
    inputs = rcnn_inputs(np.random.RandomState(11))
    assert_same_outputs(modes(RCNNHardExampleLoss, inputs))
    eager, hybrid = forward_without_host_sync(RCNNHardExampleLoss(), inputs)
    for e, h in zip(eager, hybrid):
        assert_array_equal(e, h)


# ---------------------------------------------------------------- arguments and inputs

@pytest.mark.parametrize('make, name', [
    (lambda: MultiBoxLoss(negative_mining_ratio=-1), 'negative_mining_ratio'),
    (lambda: MultiBoxLoss(rho=0), 'rho'),
    (lambda: MultiBoxLoss(lambd=-1), 'lambd'),
    (lambda: MultiBoxLoss(lambd=float('inf')), 'lambd'),
    (lambda: MultiBoxLoss(miner=gluon.nn.Sequential()), 'miner'),      # a Block, not hybrid
    (lambda: MultiBoxLoss(min_hard_negatives=1.5), 'min_hard_negatives'),
    (lambda: MultiBoxLoss(min_hard_negatives=-1), 'min_hard_negatives'),
    (lambda: SSDMultiBoxLoss(miner='hard'), 'miner'),
    (lambda: RCNNHardExampleLoss(miner=lambda *x: x), 'miner'),
    (lambda: RCNNHardExampleLoss(rho=-1.), 'rho'),
    (lambda: RCNNHardExampleLoss(lambd=float('nan')), 'lambd'),
    (lambda: RCNNHardExampleLoss(rho=RHO_MIN * 0.99), 'rho'),
])
def test_rejects_bad_arguments(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize('make, inputs', [
    (MultiBoxLoss, ssd_inputs(np.random.RandomState(13))),
    (RCNNHardExampleLoss, rcnn_inputs(np.random.RandomState(13)))], ids=['ssd', 'rcnn'])
def test_the_smallest_rho_keeps_exact_box_predictions_finite(make, inputs):
    # box predictions equal to their targets: 0.5 / rho times a zero error is 0 from
    # RHO_MIN on (below it, inf * 0 made NaN losses, and the RCNN miner then chose nothing)
    inputs[3] = inputs[1].copy()
    with_rho = make(rho=RHO_MIN)
    with_rho.initialize()
    plain = make()
    plain.initialize()
    got, want = with_rho(*inputs), plain(*inputs)
    # the box loss is 0 either way: every output is the default rho's
    for g, w in zip(got, want):
        assert_array_equal(g.asnumpy(), w.asnumpy())
    assert (got[0].asnumpy() > 0).all()


def test_rejects_bad_inputs():
    cls_pred, box_pred, cls_target, box_target = ssd_inputs(np.random.RandomState(12))
    with pytest.raises(ValueError, match='cls_target'):
        MultiBoxLoss()(cls_pred, box_pred, cls_target.expand_dims(-1), box_target)
    with pytest.raises(ValueError, match='box_pred'):
        MultiBoxLoss()(cls_pred, box_pred[:, :10], cls_target, box_target)
    with pytest.raises(ValueError, match='box_target'):
        MultiBoxLoss()(cls_pred, box_pred, cls_target, box_target[:, :10])
    with pytest.raises(ValueError, match='num_positives'):
        MultiBoxLoss()(cls_pred, box_pred, cls_target, box_target, nd.ones((2,)))
    with pytest.raises(ValueError, match='lists of one length'):
        SSDMultiBoxLoss()([cls_pred, cls_pred], [box_pred], [cls_target], [box_target])
    inputs = rcnn_inputs(np.random.RandomState(13))
    with pytest.raises(ValueError, match='rois'):
        RCNNHardExampleLoss()(*inputs[:5], inputs[5][:, :10])
    with pytest.raises(ValueError, match='box_mask'):
        RCNNHardExampleLoss()(*inputs[:4], inputs[4][:, :10], inputs[5])
    with pytest.raises(ValueError, match='box_indices'):
        RCNNHardExampleLoss()(*inputs, nd.zeros((2, 60, 1)))
    with pytest.raises(ValueError, match='box_indices'):         # box rows of one image of 2
        RCNNHardExampleLoss()(inputs[0], inputs[1][:1], inputs[2], inputs[3][:1],
                              inputs[4][:1], inputs[5], nd.zeros((1, 60)))
