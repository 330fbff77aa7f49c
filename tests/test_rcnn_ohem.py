"""OHEMFasterRCNN: the paper's OHEM step on GluonCV's FasterRCNN, checked against its own head.

The reference for the read-only pass and for the gradients is GluonCV's own
training forward run over every labelled candidate (gluonmine's RCNN sampler
with room for all of them), with gluonmine's RCNNHardExampleLoss (OHEM inside
the loss) on its outputs: the same RoIs must be selected, and the gradients
of training the head on those RoIs only must be those of the masked loss
over all of them.
"""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon, nd
from numpy.testing import assert_allclose, assert_array_equal

from conftest import no_host_sync
from gluonmine.losses import RCNNHardExampleLoss
from gluonmine.models import tiny_faster_rcnn, tiny_faster_rcnn_fpn, tiny_mask_rcnn
from gluonmine.ohem import HardExampleMiner
from gluonmine.rcnn_ohem import NEGATIVE_IOU_EDGES, OHEMFasterRCNN, _fpn_levels
from gluonmine.rcnn_target import RCNNTargetSampler
from test_rcnn import GT_BOXES, GT_LABELS, HEIGHT, WIDTH

CLASSES = ['a', 'b']
PROPOSALS = 300                    # the tiny net's RPN keeps 300 boxes an image in training
CANDIDATES = PROPOSALS + 2         # proposals, then the two ground truth rows


def freeze_head_batchnorm(net):
    """Head BatchNorm with global statistics, as GluonCV's ResNet heads: each RoI's
    output then depends on that RoI only, whichever RoIs share its batch."""
    for block in net.top_features[0]:
        if isinstance(block, gluon.nn.BatchNorm):
            block._kwargs['use_global_stats'] = True   # pylint: disable=protected-access


def tiny_net(images=2, **kwargs):
    mx.random.seed(0)
    net = tiny_faster_rcnn(CLASSES, per_device_batch_size=images, **kwargs)
    net.initialize()
    return net


def images(count=2, seed=0):
    return nd.array(np.random.RandomState(seed).uniform(0, 1, (count, 3, HEIGHT, WIDTH)))


def rcnn_loss(outputs):
    """GluonCV's train_faster_rcnn.py RCNN losses on (cls_pred, box_pred, ..., targets): (B,)."""
    cls_pred, box_pred, cls_targets, box_targets, box_masks = [outputs[i] for i in
                                                               (0, 1, 8, 9, 10)]
    count = (cls_targets >= 0).sum()
    cls = gluon.loss.SoftmaxCrossEntropyLoss()(cls_pred, cls_targets,
                                               cls_targets.expand_dims(-1) >= 0)
    box = gluon.loss.HuberLoss()(box_pred, box_targets, box_masks)
    return cls * cls_targets.size / count + box * box_pred.size / count


def gradients(net):
    return {name: p.grad().asnumpy().copy() for name, p in net.collect_params().items()
            if p.grad_req != 'null'}


def iou(boxes, gt):
    """(N, 4) x (M, 4) -> (N, M) corner IoU, 0 for padding rows."""
    lt, rb = np.maximum(boxes[:, None, :2], gt[None, :, :2]), np.minimum(boxes[:, None, 2:],
                                                                        gt[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)
    union = area(boxes)[:, None] + area(gt)[None] - inter
    return np.where((gt[None, :, 0] >= 0) & (inter > 0), inter / np.maximum(union, 1e-12), 0)


def ohem_and_dense(lambd=1.):
    """One OHEM step and the dense reference on the same net and batch (eager), the box
    loss weighted by ``lambd`` in both."""
    mx.random.seed(0)
    # GluonCV's forward with room for every candidate: the sampler keeps them all
    net = tiny_net(num_sample=CANDIDATES, pos_ratio=1.0)
    freeze_head_batchnorm(net)
    net.sampler = RCNNTargetSampler(2, PROPOSALS, CANDIDATES, 0.5, 1.0, 2)
    x = images()
    with autograd.train_mode():
        net(x, GT_BOXES, GT_LABELS)                    # deferred initialization
    ohem = OHEMFasterRCNN(net, lambd=lambd)
    net.collect_params().zero_grad()
    with autograd.record():
        out = ohem(x, GT_BOXES, GT_LABELS)
        loss = rcnn_loss(out)
    loss.backward()
    ours = gradients(net)
    net.collect_params().zero_grad()
    dense = RCNNHardExampleLoss(HardExampleMiner(64, 0.7, 'both', 1., lambd), lambd=lambd)
    with autograd.record():
        outputs = net(x, GT_BOXES, GT_LABELS)
        reference = dense(*[outputs[i] for i in (0, 1, 8, 9, 10, 2, 11)])
    reference[0].backward()
    return dict(out=out, loss=loss, grads=ours, outputs=outputs, reference=reference,
                reference_grads=gradients(net), ohem=ohem)


@pytest.fixture(scope='module')
def step():
    return ohem_and_dense()


def candidate_losses(outputs, lambd=1.):
    """Per candidate of GluonCV's training outputs (every candidate kept): its loss,
    cross-entropy + lambd x smooth L1 (B, C), and whether it is labelled (B, C)."""
    cls_pred, cls_targets = outputs[0].asnumpy(), outputs[8].asnumpy()
    log_p = cls_pred - np.log(np.exp(cls_pred).sum(axis=-1, keepdims=True))
    cls = -np.take_along_axis(log_p, np.maximum(cls_targets, 0).astype(int)[..., None], -1)[..., 0]
    diff = np.abs(outputs[1].asnumpy() - outputs[9].asnumpy())
    box_rows = (np.where(diff > 1, diff - 0.5, 0.5 * diff ** 2) * outputs[10].asnumpy()).sum(
        axis=(2, 3))
    box = np.zeros_like(cls)
    for b in range(len(box)):
        box[b, outputs[11].asnumpy()[b].astype(int)] = box_rows[b]
    return cls + lambd * box, cls_targets >= 0


# ---------------------------------------------------------------- against GluonCV's head

def test_selects_what_the_loss_over_all_candidates_selects(step):
    out, (_, _, _, indices, _) = step['out'], step['reference']
    rois = step['outputs'][2].asnumpy()                                   # (B, R, 4) slots
    index = indices.asnumpy().astype(int)                                 # (B, 64)
    assert (index >= 0).all()                                             # 64 an image
    want = np.stack([rois[b, index[b]] for b in range(2)])
    assert_allclose(out.rois.asnumpy(), want, rtol=0, atol=1e-4)          # same RoIs, same order


def test_loss_equals_the_masked_loss_over_all_candidates(step):
    assert_allclose(step['loss'].asnumpy(), step['reference'][0].asnumpy(), rtol=1e-4)


def test_gradients_reach_the_head_through_the_selected_rois_only(step):
    # training GluonCV's head on the 128 selected RoIs gives the gradient of the loss over
    # all 604 candidates masked to the selection: the other RoIs contribute nothing
    ours, want = step['grads'], step['reference_grads']
    assert set(ours) == set(want)
    head = [name for name in ours if 'dense' in name or 'top' in name]
    assert head and all(np.abs(ours[name]).sum() > 0 for name in head)
    for name in ours:
        scale = max(np.abs(want[name]).max(), 1e-6)
        assert_allclose(ours[name] / scale, want[name] / scale, rtol=0, atol=1e-4, err_msg=name)


# ---------------------------------------------------------------- outputs and statistics

def test_outputs_follow_gluoncvs_conventions(step):
    out = step['out']
    assert out.cls_pred.shape == (2, 64, 3) and out.box_pred.shape == (2, 64, 2, 4)
    assert out.box_targets.shape == out.box_masks.shape == (2, 64, 2, 4)
    assert out.rpn_score.shape[::2] == (2, 1) and out.anchors.shape[0] == 1
    assert_array_equal(out.indices.asnumpy(), np.tile(np.arange(64), (2, 1)))
    samples, cls_targets = out.samples.asnumpy(), out.cls_targets.asnumpy()
    matches, gt_labels = out.matches.asnumpy().astype(int), GT_LABELS.asnumpy()[..., 0]
    for b in range(2):
        best = iou(out.rois.asnumpy()[b], GT_BOXES.asnumpy()[b])
        positive, negative = samples[b] > 0, samples[b] < 0
        assert positive.sum() > 0 and positive.sum() + negative.sum() == 64
        assert (best.max(axis=1)[positive] >= 0.5).all()
        assert (best.max(axis=1)[negative] < 0.5).all()               # bg_lo 0: any IoU below
        assert_array_equal(cls_targets[b][positive], gt_labels[b][matches[b][positive]] + 1)
        assert (cls_targets[b][negative] == 0).all()
        masks = out.box_masks.asnumpy()[b]
        assert_array_equal(masks.sum(axis=(1, 2)), 4 * positive)
        assert_array_equal(masks[positive].argmax(axis=1)[:, 0], cls_targets[b][positive] - 1)
    # the RPN's raw outputs and anchors, which GluonCV's RPN loss reads, are the net's own
    for got, want in zip((out.rpn_score, out.rpn_box, out.anchors), step['outputs'][5:8]):
        assert_allclose(got.asnumpy(), want.asnumpy(), rtol=1e-5, atol=1e-6)


def test_statistics(step):
    out, outputs = step['out'], step['outputs']
    stats = out.stats
    samples = out.samples.asnumpy()
    assert_array_equal(stats.num_positives.asnumpy(), (samples > 0).sum(axis=1))
    assert_array_equal(stats.num_negatives.asnumpy(), (samples < 0).sum(axis=1))
    # histogram of the selected negatives' best IoU, in bins of 0.05
    for b in range(2):
        best = iou(out.rois.asnumpy()[b], GT_BOXES.asnumpy()[b]).max(axis=1)[samples[b] < 0]
        want, _ = np.histogram(best, bins=NEGATIVE_IOU_EDGES)
        assert_array_equal(stats.negative_ious.asnumpy()[b], want)
    # mean read-only loss of the mined RoIs and of every labelled candidate, from GluonCV's head
    loss, labelled = candidate_losses(outputs)
    mask = step['reference'][4].asnumpy() > 0
    assert_allclose(stats.all_loss.asnumpy(), (loss * labelled).sum(1) / labelled.sum(1),
                    rtol=1e-4)
    assert_allclose(stats.mined_loss.asnumpy(), (loss * mask).sum(1) / mask.sum(1), rtol=1e-4)
    assert (stats.mined_loss.asnumpy() > stats.all_loss.asnumpy()).all()


def test_lambd_weights_the_box_loss_in_the_selection_and_the_statistics():
    weighted = ohem_and_dense(lambd=3.)
    # the default miner ranks by the loss trained (on this batch the 6 positives of each
    # image lead whatever the weight, so the selection alone cannot tell)
    assert 'loc_loss_weight=3.0' in repr(weighted['ohem'].mining.miner)
    out, (_, _, _, indices, mask) = weighted['out'], weighted['reference']
    rois, index = weighted['outputs'][2].asnumpy(), indices.asnumpy().astype(int)
    assert_allclose(out.rois.asnumpy(), np.stack([rois[b, index[b]] for b in range(2)]),
                    rtol=0, atol=1e-4)
    loss, _ = candidate_losses(weighted['outputs'], lambd=3.)
    mask = mask.asnumpy() > 0
    assert_allclose(out.stats.mined_loss.asnumpy(), (loss * mask).sum(1) / mask.sum(1),
                    rtol=1e-4)


def test_negatives_keep_to_neg_iou_thresh_low():
    net = tiny_net()
    freeze_head_batchnorm(net)
    with autograd.train_mode():
        net(images(), GT_BOXES, GT_LABELS)                 # deferred initialization
        out = OHEMFasterRCNN(net, neg_iou_thresh_low=0.1)(images(), GT_BOXES, GT_LABELS)
    samples = out.samples.asnumpy()
    assert (samples < 0).any()
    for b in range(2):
        best = iou(out.rois.asnumpy()[b], GT_BOXES.asnumpy()[b]).max(axis=1)
        assert (best[samples[b] < 0] >= 0.1 - 1e-6).all()
    assert not out.stats.negative_ious.asnumpy()[:, :2].any()     # bins [0, 0.05), [0.05, 0.1)


def test_empty_slots_and_the_nets_positive_threshold():
    # a net with pos_iou_thresh 0.7, negatives from IoU 0.5: the candidates below 0.5 are
    # ignored, so a miner without limit (NMS by label at IoU 1 suppresses nothing, but needs
    # the class targets as labels) selects few, and the slots after them are empty:
    # RoI (-1, -1, -1, -1), sample 0, match 0, class target -1 (no loss), no box target.
    # The third image has no object: nothing is labelled there, its mean losses are 0.
    net = tiny_net(pos_iou_thresh=0.7)
    ohem = OHEMFasterRCNN(net, miner=HardExampleMiner(None, 1., nms_by_label=True),
                          neg_iou_thresh_low=0.5)
    gt_box = nd.concat(GT_BOXES, -nd.ones((1, 2, 4)), dim=0)
    gt_label = nd.concat(GT_LABELS, -nd.ones((1, 2, 1)), dim=0)
    with autograd.train_mode():
        out = ohem(images(3), gt_box, gt_label)
    samples = out.samples.asnumpy()                                       # (3, R)
    for b in range(2):
        best = iou(out.rois.asnumpy()[b], GT_BOXES.asnumpy()[b]).max(axis=1)
        positive, negative = samples[b] > 0, samples[b] < 0
        assert positive.any() and (best[positive] >= 0.7).all()
        assert negative.any() and ((best[negative] >= 0.5 - 1e-6) & (best[negative] < 0.7)).all()
    taken = samples != 0
    assert not taken[2].any()
    assert_array_equal(np.sort(taken, axis=1)[:, ::-1], taken)         # the selected first
    empty = ~taken
    assert_array_equal(out.rois.asnumpy()[empty], -1)
    assert_array_equal(out.matches.asnumpy()[empty], 0)
    assert_array_equal(out.cls_targets.asnumpy()[empty], -1)
    assert not out.box_targets.asnumpy()[empty].any() and not out.box_masks.asnumpy()[empty].any()
    for stat in (out.stats.mined_loss, out.stats.all_loss):
        assert stat.asnumpy()[2] == 0 and (stat.asnumpy()[:2] > 0).all()


def test_fpn_levels_are_gluoncvs():
    # level floor(4 + log2(sqrt(w h) / 224)) with w = x2 - x1 + 1, clipped to [2, 5]:
    # sides 224 -> 4, 336 -> 4 (4.58, floored), 112 -> 3, 448 -> 5, 56 -> 2, 10 and 2000 clip
    sides = [224, 336, 112, 448, 56, 10, 2000]
    rois = nd.array([[0, 5, 5, 5 + side - 1, 5 + side - 1] for side in sides])
    assert_array_equal(_fpn_levels(nd, rois, 2, 5).asnumpy(), [4, 4, 3, 5, 2, 2, 5])


def test_negatives_at_or_above_iou_0_5_count_in_the_last_bin():
    # with a net's pos_iou_thresh above 0.5 a negative may overlap 0.5 to 0.7: it counts in
    # the last bin, as NEGATIVE_IOU_EDGES says (a unit check of the statistics)
    from gluonmine.rcnn_ohem import _Candidates, _stats  # pylint: disable=import-outside-toplevel
    chosen = _Candidates(None, nd.array([[-1, -1, 1, 0]]), None, None, None, None,
                         nd.array([[0.62, 0.03, 0.9, 0.]]))
    histogram = _stats(nd, chosen, chosen, nd.ones((1, 4)), nd.ones((1, 4))).negative_ious
    assert_array_equal(histogram.asnumpy(), [[1] + [0] * (len(NEGATIVE_IOU_EDGES) - 3) + [1]])


# ---------------------------------------------------------------- modes, batches, training

def test_eager_equals_hybridized_outputs_and_gradients():
    net = tiny_net()
    x = images()
    results = []
    for hybridize in (False, True):
        ohem = OHEMFasterRCNN(net)
        if hybridize:
            ohem.hybridize(static_alloc=True)
        net.collect_params().zero_grad()
        with autograd.record():
            out = ohem(x, GT_BOXES, GT_LABELS)
            loss = rcnn_loss(out)
        loss.backward()
        results.append(([o.asnumpy() for o in out[:12]] + [s.asnumpy() for s in out.stats],
                        gradients(net)))
    (eager, eager_grads), (hybrid, hybrid_grads) = results
    for e, h in zip(eager, hybrid):
        assert_allclose(e, h, rtol=1e-5, atol=1e-6)
    for name in eager_grads:
        assert_allclose(eager_grads[name], hybrid_grads[name], rtol=1e-4, atol=1e-6,
                        err_msg=name)


def random_batch(rng, gts, height):
    """Images (2, 3, height, WIDTH), gt_box (2, gts, 4) and gt_label (2, gts, 1), -1 padded."""
    gt_box, gt_label = -np.ones((2, gts, 4)), -np.ones((2, gts, 1))
    for b in range(2):
        n = rng.randint(1, gts + 1)
        wh = rng.uniform(16, 60, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * ([WIDTH, height] - wh)
        gt_box[b, :n] = np.concatenate([xy, xy + wh], axis=1)
        gt_label[b, :n, 0] = rng.randint(0, len(CLASSES), n)
    return [nd.array(x) for x in (rng.uniform(0, 1, (2, 3, height, WIDTH)), gt_box, gt_label)]


def test_static_alloc_follows_changing_shapes():
    # image sizes and ground-truth rows change between batches, as in GluonCV's training;
    # a static_alloc graph must give what the eager step gives, every time
    net = tiny_net()
    eager, hybrid = OHEMFasterRCNN(net), OHEMFasterRCNN(net)
    hybrid.hybridize(static_alloc=True)
    rng = np.random.RandomState(1)
    for gts, height in [(2, 128), (5, 96), (3, 96), (2, 128)]:
        batch = random_batch(rng, gts, height)
        outputs = []
        for model in (eager, hybrid):
            with autograd.record():
                out = model(*batch)
                loss = rcnn_loss(out)
            loss.backward()
            outputs.append([o.asnumpy() for o in out[:12]])
        for e, h in zip(*outputs):
            assert_allclose(e, h, rtol=1e-5, atol=1e-6)


def outputs_after_junk(ohem, batch, rois, junk_value):
    """The step's outputs after junk filled memory of the size the pooled RoIs need.

    MXNet's ``ROIAlign`` does not write the rows of RoIs with batch index -1
    (padding, and in FPN the RoIs of other levels): they must not matter.
    Returns the outputs (B, K, ...) as NumPy arrays, anchors left out.
    """
    for channels in (16, 48):
        junk = nd.ones((rois, channels, 7, 7)) * junk_value
        junk.wait_to_read()
        del junk
    with autograd.record():
        out = ohem(*batch)
    return [o.asnumpy() for i, o in enumerate(out[:12]) if i != 7]


def test_feature_pyramid_net():
    # GluonCV's FPN Faster R-CNN (the net's own level assignment pools the RoIs), with
    # GluonCV's ROIAlign, whose CPU kernel leaves masked rows unwritten: the head zeroes them
    mx.random.seed(0)
    net = tiny_faster_rcnn_fpn(CLASSES, per_device_batch_size=2, short=HEIGHT, max_size=WIDTH,
                               roi_mode='align')
    net.initialize()
    assert net.num_stages == 5
    results = []
    for hybridize in (False, True):
        ohem = OHEMFasterRCNN(net)
        if hybridize:
            ohem.hybridize(static_alloc=True)
        with autograd.record():
            out = ohem(images(), GT_BOXES, GT_LABELS)
            loss = rcnn_loss(out)
        loss.backward()
        assert len(out.anchors) == 5                   # one array a level, as GluonCV's FPN
        results.append([o.asnumpy() for i, o in enumerate(out[:12]) if i != 7])
    assert results[0][0].shape == (2, 64, 3) and np.isfinite(loss.asnumpy()).all()
    assert np.abs(net.class_predictor.weight.grad().asnumpy()).sum() > 0
    for e, h in zip(*results):
        assert_allclose(e, h, rtol=1e-5, atol=1e-6)
    ohem = OHEMFasterRCNN(net)
    batch = (images(), GT_BOXES, GT_LABELS)
    rois = 2 * (200 + 2)
    for a, b in zip(outputs_after_junk(ohem, batch, rois, 1e3),
                    outputs_after_junk(ohem, batch, rois, -7.)):
        assert_array_equal(a, b)


def test_feature_pyramid_net_selects_what_gluoncvs_head_gives():
    # the FPN net against its own training forward over every candidate (head BatchNorm
    # frozen): the RoIs pooled from the levels P2-P5 by GluonCV's rule give the same
    # selection and the same class logits
    mx.random.seed(0)
    net = tiny_faster_rcnn_fpn(CLASSES, per_device_batch_size=2, short=HEIGHT, max_size=WIDTH,
                               num_sample=202, pos_ratio=1.0)
    net.initialize()
    for block in net.box_features:
        if isinstance(block, gluon.nn.BatchNorm):
            block._kwargs['use_global_stats'] = True   # pylint: disable=protected-access
    net.sampler = RCNNTargetSampler(2, 200, 202, 0.5, 1.0, 2)
    x = images()
    with autograd.train_mode():
        outputs = net(x, GT_BOXES, GT_LABELS)
        out = OHEMFasterRCNN(net)(x, GT_BOXES, GT_LABELS)
    dense = RCNNHardExampleLoss(HardExampleMiner(64, 0.7, 'both', 1., 1.))
    index = dense(*[outputs[i] for i in (0, 1, 8, 9, 10, 2, 11)])[3].asnumpy().astype(int)
    for got, want in [(out.rois, outputs[2]), (out.cls_pred, outputs[0])]:
        want = want.asnumpy()
        assert_allclose(got.asnumpy(), np.stack([want[b, index[b]] for b in range(2)]),
                        rtol=1e-5, atol=1e-5)


def test_no_host_round_trip():
    net = tiny_net()
    ohem = OHEMFasterRCNN(net)
    x = images()
    with autograd.train_mode():
        ohem(x, GT_BOXES, GT_LABELS)                   # deferred initialization
        for hybridize in (False, True):
            if hybridize:
                ohem.hybridize()
            with no_host_sync():
                out = ohem(x, GT_BOXES, GT_LABELS)
                mx.nd.waitall()
            assert out.cls_pred.shape == (2, 64, 3)


def test_any_batch_size_and_an_image_without_objects():
    # the net was built for one image a device; three come, the last without objects
    net = tiny_net(images=1)
    ohem = OHEMFasterRCNN(net, miner=HardExampleMiner(32))
    ohem.hybridize()
    gt_box = nd.concat(GT_BOXES, -nd.ones((1, 2, 4)), dim=0)
    gt_label = nd.concat(GT_LABELS, -nd.ones((1, 2, 1)), dim=0)
    with autograd.record():
        out = ohem(images(3), gt_box, gt_label.reshape((3, 2)))       # (B, M) labels work too
        loss = rcnn_loss(out)
    loss.backward()
    samples = out.samples.asnumpy()
    assert out.cls_pred.shape == (3, 32, 3)
    assert (samples[:2] > 0).any() and not (samples[2] > 0).any()
    assert (samples[2] < 0).sum() == 32 and np.isfinite(loss.asnumpy()).all()
    # a batch without any ground-truth row: negatives only
    with autograd.train_mode():
        out = ohem(images(2), nd.array(np.zeros((2, 0, 4))), nd.array(np.zeros((2, 0, 1))))
    assert (out.samples.asnumpy() == -1).all()


def test_training_steps_run_with_finite_losses():
    net = tiny_net()
    ohem = OHEMFasterRCNN(net)
    ohem.hybridize(static_alloc=True)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.01})
    x = images()
    losses, weights = [], []
    for _ in range(3):
        with autograd.record():
            out = ohem(x, GT_BOXES, GT_LABELS)
            loss = rcnn_loss(out)
        loss.backward()
        trainer.step(2)
        losses.append(loss.asnumpy())
        weights.append(net.class_predictor.weight.data().asnumpy().copy())
    assert np.isfinite(losses).all()
    assert not np.array_equal(weights[0], weights[-1])


# ---------------------------------------------------------------- arguments and inputs

@pytest.mark.parametrize('make, name', [
    (lambda net: OHEMFasterRCNN(gluon.nn.Dense(2)), 'net'),
    (lambda net: OHEMFasterRCNN(net, miner='ohem'), 'miner'),
    (lambda net: OHEMFasterRCNN(net, rho=0.), 'rho'),
    (lambda net: OHEMFasterRCNN(net, lambd=-1.), 'lambd'),
    (lambda net: OHEMFasterRCNN(net, neg_iou_thresh_low=0.7), 'neg_iou_thresh_low'),
    # its outputs would stand where GluonCV's training loop reads the mask prediction
    (lambda net: OHEMFasterRCNN(tiny_mask_rcnn(CLASSES)), 'Mask R-CNN'),
])
def test_rejects_bad_arguments(make, name):
    with pytest.raises(ValueError, match=name):
        make(tiny_faster_rcnn(CLASSES))


def test_rejects_bad_inputs_and_prediction_mode():
    ohem = OHEMFasterRCNN(tiny_net())
    x = images()
    with pytest.raises(RuntimeError, match='autograd.record'):
        ohem(x, GT_BOXES, GT_LABELS)
    with autograd.train_mode():
        with pytest.raises(ValueError, match='gt_box'):
            ohem(x, GT_BOXES[:, :, :3], GT_LABELS)
        with pytest.raises(ValueError, match='gt_label'):
            ohem(x, GT_BOXES, GT_LABELS[:, :1])
        with pytest.raises(ValueError, match='gt_box'):
            ohem(x, GT_BOXES[:1], GT_LABELS[:1])
        with pytest.raises(ValueError, match='gt_label'):
            ohem(x, GT_BOXES, GT_LABELS[:1])

