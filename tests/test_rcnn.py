"""gluonmine.rcnn: gluonmine's samplers in GluonCV's FasterRCNN, and a real training step."""
import mxnet as mx
import numpy as np
import pytest
from gluoncv.data.batchify import MaskRCNNTrainBatchify
from gluoncv.data.transforms.presets.rcnn import FasterRCNNDefaultTrainTransform
from gluoncv.model_zoo.rcnn.faster_rcnn.rcnn_target import RCNNTargetSampler as GluonCVSampler
from gluoncv.model_zoo.rcnn.rpn.rpn_target import RPNTargetGenerator as GluonCVGenerator
from mxnet import autograd, gluon, nd
from numpy.testing import assert_array_equal

from gluonmine.models import tiny_faster_rcnn, tiny_faster_rcnn_fpn, tiny_mask_rcnn
from gluonmine.quota import QuotaSampler
from gluonmine.rcnn import install_samplers, rcnn_sampler_for
from gluonmine.rcnn_target import RCNNTargetSampler
from gluonmine.rpn import RPNTargetGenerator, RPNTargetSampler
from gluonmine.transforms import FasterRCNNTrainTransform, MaskRCNNTrainTransform
from test_transforms import IMAGE, LABEL, POLYGONS

HEIGHT, WIDTH = 128, 160
# image 0: two objects; image 1: one object and a padding row
GT_BOXES = nd.array([[[10, 10, 60, 80], [50, 40, 120, 110]],
                     [[5, 5, 40, 40], [-1, -1, -1, -1]]])
GT_LABELS = nd.array([[[0], [1]], [[1], [-1]]])
IM_HW = nd.array([[HEIGHT, WIDTH]] * 2)


def tiny_net(**kwargs):
    """GluonCV's FasterRCNN on a tiny backbone, 2 images a device, initialized."""
    net = tiny_faster_rcnn(['a', 'b'], per_device_batch_size=2, **kwargs)
    net.initialize()
    return net


def gluoncv_rpn_targets(anchors):
    """GluonCV's RPN targets, one image at a time as its transform makes them: (B, N)..."""
    generator = GluonCVGenerator()
    per_image = []
    for gt in GT_BOXES.asnumpy():
        real = nd.array(gt[gt[:, 0] >= 0])
        per_image.append([np.asarray(t) for t in generator(real, anchors[0], WIDTH, HEIGHT)])
    return [nd.array(np.stack(parts)) for parts in zip(*per_image)]


def training_step(net, rpn_targets):
    """Forward and backward with the losses of GluonCV's train_faster_rcnn.py.

    ``rpn_targets(anchors) -> (cls_target, box_target, box_mask)``. Returns the
    network outputs, the RPN targets and the four losses, as NumPy arrays.
    """
    rpn_cls_loss = gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=False)
    rpn_box_loss = gluon.loss.HuberLoss(rho=1 / 9.)
    rcnn_cls_loss = gluon.loss.SoftmaxCrossEntropyLoss()
    rcnn_box_loss = gluon.loss.HuberLoss()
    images = nd.random.uniform(shape=(2, 3, HEIGHT, WIDTH))
    with autograd.record():
        outputs = net(images, GT_BOXES, GT_LABELS)
        (cls_pred, box_pred, _, _, _, rpn_score, rpn_box, anchors, cls_targets, box_targets,
         box_masks, _) = outputs
        rpn_cls_targets, rpn_box_targets, rpn_box_masks = rpn_targets(anchors)
        rpn_score = rpn_score.squeeze(axis=-1)
        num_rpn_pos = (rpn_cls_targets >= 0).sum()
        rpn_loss1 = rpn_cls_loss(rpn_score, rpn_cls_targets,
                                 rpn_cls_targets >= 0) * rpn_cls_targets.size / num_rpn_pos
        rpn_loss2 = rpn_box_loss(rpn_box, rpn_box_targets,
                                 rpn_box_masks) * rpn_box.size / num_rpn_pos
        num_rcnn_pos = (cls_targets >= 0).sum()
        rcnn_loss1 = rcnn_cls_loss(cls_pred, cls_targets, cls_targets.expand_dims(-1) >= 0) \
            * cls_targets.size / num_rcnn_pos
        rcnn_loss2 = rcnn_box_loss(box_pred, box_targets, box_masks) * box_pred.size / num_rcnn_pos
        losses = [rpn_loss1, rpn_loss2, rcnn_loss1, rcnn_loss2]
        total = sum(loss.sum() for loss in losses)
    total.backward()
    targets = [rpn_cls_targets, rpn_box_targets, rpn_box_masks]
    return [[x.asnumpy() for x in group] for group in (outputs, targets, losses)]


def gradients(net):
    """Every gradient of the trainable parameters, flattened into one NumPy array."""
    return np.concatenate([p.grad().asnumpy().ravel() for p in net.collect_params().values()
                           if p.grad_req != 'null'])


# ---------------------------------------------------------------- install_samplers

def test_installs_rcnn_sampler_with_the_nets_settings():
    net = tiny_net(num_sample=96, rpn_train_post_nms=200, max_num_gt=40)
    generator = install_samplers(net, device_targets=True)
    sampler = net.sampler
    assert isinstance(sampler, RCNNTargetSampler)
    # pylint: disable=protected-access
    assert (sampler._num_image, sampler._num_proposal, sampler.num_sample, sampler.max_pos,
            sampler._pos_iou_thresh, sampler._max_num_gt) == (2, 200, 96, 24, 0.5, 40)
    assert isinstance(generator, RPNTargetGenerator)
    assert isinstance(generator.sampler, RPNTargetSampler)
    assert generator.sampler.num_sample == 256 and generator.sampler.max_pos == 128
    assert generator._stds == (1., 1., 1., 1.)


def test_device_targets_take_the_rpn_arguments_of_the_transform():
    net = tiny_net()
    generator = install_samplers(net, device_targets=True, num_sample=64, pos_ratio=0.25,
                                 box_norm=(1., 1., 2., 2.), allowed_border=8)
    assert generator.sampler.num_sample == 64 and generator.sampler.max_pos == 16
    # pylint: disable=protected-access
    assert generator._stds == (1., 1., 2., 2.) and generator._allowed_border == 8
    quota = QuotaSampler(num_sample=32)
    assert install_samplers(net, device_targets=True, rpn_sampler=quota).sampler is quota


def test_rcnn_sampler_for_passes_the_negative_band():
    net = tiny_net()
    sampler = rcnn_sampler_for(net, neg_iou_thresh_high=0.5, neg_iou_thresh_low=0.1)
    assert sampler._neg_iou_thresh_low == np.float32(0.1)  # pylint: disable=protected-access
    assert net.sampler is not sampler and isinstance(net.sampler, GluonCVSampler)
    install_samplers(net, device_targets=True, rcnn_sampler=sampler)
    assert net.sampler is sampler
    install_samplers(net, device_targets=True)              # an installed sampler is kept
    assert net.sampler is sampler


@pytest.mark.parametrize('call, name', [
    (lambda net: install_samplers(gluon.nn.Dense(2)), 'net'),
    (lambda net: rcnn_sampler_for('net'), 'net'),
    (lambda net: install_samplers(net, rcnn_sampler=QuotaSampler()), 'rcnn_sampler'),
    (lambda net: install_samplers(net, device_targets=True, short=600), 'short'),
    (lambda net: install_samplers(net, device_targets=True, num_sample=0), 'num_sample'),
    (lambda net: install_samplers(net, num_sample=0), 'num_sample'),
])
def test_rejects_bad_arguments(call, name):
    net = tiny_net()
    with pytest.raises(ValueError, match=name):
        call(net)
    assert type(net.sampler) is GluonCVSampler              # nothing installed on failure


def test_transform_path():
    net = tiny_net()
    transform = install_samplers(net, num_sample=64)
    assert isinstance(transform, FasterRCNNTrainTransform)
    assert isinstance(net.sampler, RCNNTargetSampler)
    assert transform.target_generator.sampler.num_sample == 64
    image = nd.array(np.random.RandomState(0).randint(0, 255, (90, 120, 3)), dtype='uint8')
    label = np.array([[10, 12, 60, 70, 0], [50, 20, 110, 85, 1]], dtype='float32')
    img, bbox, cls_targets, box_targets, box_masks = transform(image, label)
    assert min(img.shape[1:]) == net.short                   # the net's size, as GluonCV's script
    assert (cls_targets[0] >= 0).sum() == 64
    wide = transform(nd.zeros((40, 200, 3), dtype='uint8'), label[:1] / 4)[0]
    assert wide.shape[1:] == (45, net.max_size)              # the long side capped at the net's



def test_a_mask_rcnn_gets_gluonmine_samplers_and_its_own_transform():
    net, gluoncv_net = [tiny_mask_rcnn(['a', 'b'], per_device_batch_size=2) for _ in range(2)]
    for each in (net, gluoncv_net):
        each.initialize()
    transform = install_samplers(net, num_sample=64)
    assert isinstance(transform, MaskRCNNTrainTransform)
    assert isinstance(net.sampler, RCNNTargetSampler)
    batch = MaskRCNNTrainBatchify(net)([transform(IMAGE, LABEL, POLYGONS)] * 2)
    # (images, boxes, masks, cls_targets, box_targets, box_masks); one shard: bare arrays
    cls_targets = batch[3][0].reshape((2, -1)).asnumpy()
    assert_array_equal((cls_targets >= 0).sum(axis=1), [64, 64])
    inputs = batch[0], batch[1][:, :, :4], batch[1][:, :, 4:5]
    with autograd.record():
        theirs = gluoncv_net(*inputs)
    with autograd.record():
        ours = net(*inputs)
        # GluonCV 0.10's Mask R-CNN step: mask targets of the positives (``indices``) from
        # gluonmine's matches and the RCNN class targets, then its mask loss
        mask_pred, roi, matches, cls_targets, indices = [ours[i] for i in (2, 3, 5, 9, 12)]
        positives = [nd.stack(*[nd.take(x[i], indices[i]) for i in range(2)])
                     for x in (roi, matches, cls_targets)]
        mask_targets, mask_masks = net.mask_target(positives[0], batch[2], *positives[1:])
        mask_loss = gluon.loss.SigmoidBinaryCrossEntropyLoss()(mask_pred, mask_targets,
                                                                mask_masks)
    mask_loss.backward()
    # Mask R-CNN's 13 training outputs, the mask prediction among them
    assert [o.shape for o in ours] == [o.shape for o in theirs]
    samples = ours[4].asnumpy()
    assert set(np.unique(samples)) <= {-1., 0., 1.} and (samples == 1).any()
    assert mask_targets.shape == mask_pred.shape and mask_masks.sum().asscalar() > 0
    assert np.isfinite(mask_loss.asnumpy()).all()
    assert np.abs(net.mask.mask.weight.grad().asnumpy()).sum() > 0


def test_device_targets_on_a_feature_pyramid_net():
    # GluonCV's FPN FasterRCNN returns its anchors as a list, one array a level: the
    # generator takes that output as it is, joined in the order of the RPN scores
    mx.random.seed(0)
    net = tiny_faster_rcnn_fpn(['a', 'b'], per_device_batch_size=2)
    net.initialize()
    generator = install_samplers(net, device_targets=True)
    generator.hybridize()
    net.hybridize()
    with autograd.train_mode():
        outputs = net(nd.random.uniform(shape=(2, 3, HEIGHT, WIDTH)), GT_BOXES, GT_LABELS)
    rpn_score, levels = outputs[5], outputs[7]
    assert isinstance(levels, list) and len(levels) == 5
    mx.random.seed(1)
    cls_target, box_target, _ = generator(GT_BOXES, levels, IM_HW)
    assert cls_target.shape == rpn_score.shape[:2]
    assert box_target.shape == rpn_score.shape[:2] + (4,)
    mx.random.seed(1)
    joined = generator(GT_BOXES, nd.concat(*levels, dim=1), IM_HW)
    assert_array_equal(cls_target.asnumpy(), joined[0].asnumpy())
    assert ((cls_target.asnumpy() == 1).sum(axis=1) > 0).all()

# ---------------------------------------------------------------- a real training step

@pytest.fixture(scope='module')
def steps():
    """One hybridized training step of the tiny Faster R-CNN with GluonCV's samplers and
    one with gluonmine's on both stages (RPN targets on the device), same seeds."""
    results = {}
    for name in ('gluoncv', 'gluonmine'):
        mx.random.seed(0)
        net = tiny_net()
        if name == 'gluonmine':
            generator = install_samplers(net, device_targets=True)
            generator.hybridize()
            rpn_targets = lambda anchors: generator(GT_BOXES, anchors, IM_HW)
        else:
            rpn_targets = gluoncv_rpn_targets
        net.hybridize()
        results[name] = training_step(net, rpn_targets) + [gradients(net)]
    return results


def test_training_step_with_gluonmine_samplers_is_finite(steps):
    outputs, targets, losses, grads = steps['gluonmine']
    assert all(np.isfinite(loss).all() for loss in losses)
    assert all(loss.sum() > 0 for loss in losses)
    assert np.isfinite(grads).all() and np.abs(grads).sum() > 0
    samples = outputs[3]
    assert (samples > 0).sum(axis=1).min() > 0                   # the gts are appended
    assert ((samples > 0).sum(axis=1) <= 32).all()               # 128 * 0.25
    assert ((targets[0] == 1).sum(axis=1) > 0).all()


def test_same_shapes_as_with_gluoncv_samplers(steps):
    for mine, theirs in zip(steps['gluonmine'][:3], steps['gluoncv'][:3]):
        assert [x.shape for x in mine] == [x.shape for x in theirs]
    assert steps['gluonmine'][3].shape == steps['gluoncv'][3].shape
    for outputs, targets, _, _ in steps.values():       # 256 RPN anchors an image, 128 RoIs
        assert ((targets[0] >= 0).sum(axis=1) == 256).all()
        assert ((outputs[3] != 0).sum(axis=1) == 128).all()


def test_replacing_the_sampler_of_a_hybridized_net_rebuilds_its_graph():
    net = tiny_net()
    net.hybridize()
    training_step(net, gluoncv_rpn_targets)                      # cached with GluonCV's sampler
    install_samplers(net, device_targets=True)
    outputs = training_step(net, gluoncv_rpn_targets)[0]
    # gluonmine's slot order (positives first, empty slots last) shows it ran
    samples = outputs[3]
    for row in samples:
        assert_array_equal(row, sorted(row, key=lambda s: {1: 0, -1: 1, 0: 2}[s]))


def numpy_best_iou(boxes, gt_boxes):
    """Largest IoU of each box (K, 4) with the real rows of gt_boxes (M, 4): (K,)."""
    real = gt_boxes[gt_boxes[:, 0] >= 0]
    ious = nd.contrib.box_iou(nd.array(boxes), nd.array(real)).asnumpy()
    return ious.max(axis=1) if len(real) else np.zeros(len(boxes))


def test_correct_in_a_static_alloc_net_whose_input_shapes_change():
    # GluonCV trains with hybridize(static_alloc=True), under autograd, on images and
    # ground-truth counts that change every batch. There, MXNet 1.9.1's contrib.foreach
    # (the loop-free way to run box_iou per image) sometimes returns zeros: every
    # sample then turns negative. Each appended real gt must stay a positive.
    net = tiny_net()
    install_samplers(net, device_targets=True)
    net.hybridize(static_alloc=True)
    rng = np.random.RandomState(0)
    for _ in range(16):
        height, width = rng.choice([128, 139, 157, 160], size=2)
        num_gt = rng.randint(1, 4)
        gt = np.full((2, num_gt, 4), -1, 'float32')
        for b in range(2):
            real = rng.randint(1, num_gt + 1)
            corner = rng.uniform(0, 80, (real, 2))
            gt[b, :real] = np.concatenate([corner, corner + rng.uniform(10, 40, (real, 2))], 1)
        labels = np.where(gt[..., :1] >= 0, 0, -1).astype('float32')
        with autograd.record():
            outputs = net(nd.random.uniform(shape=(2, 3, height, width)), nd.array(gt),
                          nd.array(labels))
        rois, samples = outputs[2].asnumpy(), outputs[3].asnumpy()
        for b in range(2):
            assert (samples[b] > 0).sum() >= (gt[b, :, 0] >= 0).sum()
            assert (numpy_best_iou(rois[b][samples[b] > 0], gt[b]) >= 0.5).all()
            assert (numpy_best_iou(rois[b][samples[b] < 0], gt[b]) < 0.5).all()


def test_rcnn_sampler_for_takes_the_nets_quota_and_a_given_negative_band():
    net = tiny_faster_rcnn(['a', 'b'], num_sample=96, pos_ratio=0.5, pos_iou_thresh=0.6)
    sampler = rcnn_sampler_for(net)
    assert sampler.max_pos == 48
    assert sampler._pos_iou_thresh == np.float32(0.6)  # pylint: disable=protected-access
    sampler = rcnn_sampler_for(net, neg_iou_thresh_high=0.4)
    assert sampler._neg_iou_thresh_high == np.float32(0.4)  # pylint: disable=protected-access


def test_transform_path_on_a_feature_pyramid_net():
    # install_samplers builds the FPN (multi-stage) transform: GluonCV's five levels
    net = tiny_faster_rcnn_fpn(['a', 'b'])
    net.initialize()
    transform = install_samplers(net, num_sample=64)
    transform._flip_p = 0.                                  # pylint: disable=protected-access
    theirs = FasterRCNNDefaultTrainTransform(net.short, net.max_size, net, flip_p=0.,
                                             multi_stage=True)(IMAGE, LABEL)
    ours = transform(IMAGE, LABEL)
    assert len(ours[2]) == len(theirs[2]) == 5
    assert [t.shape for t in ours[2]] == [t.shape for t in theirs[2]]


def test_transform_path_takes_the_nets_anchor_map_size():
    # a net whose anchor generator holds a 64 x 64 map: GluonCV's default ashape 128 fails
    net = tiny_faster_rcnn(['a', 'b'], alloc_size=(64, 64))
    net.initialize()
    cls_targets = install_samplers(net, num_sample=64)(IMAGE, LABEL)[2]
    assert [t.shape for t in cls_targets] == [(16, 22, 9)] and (cls_targets[0] >= 0).sum() == 64
