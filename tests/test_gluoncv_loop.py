"""gluonmine inside GluonCV 0.10's own Faster R-CNN, Mask R-CNN and SSD training loops.

The loop of GluonCV's ``scripts/detection/faster_rcnn/train_faster_rcnn.py``,
built from the pieces it imports from the installed GluonCV (its batchify,
bucket sampler, ``ForwardBackwardTask``, losses and metrics), with the two
swaps README gives: gluonmine's transform class where the script passes
``FasterRCNNDefaultTrainTransform`` (called as the script calls it) and
gluonmine's RCNN sampler in ``net.sampler``. C4 and FPN nets. Then the same
for Mask R-CNN (its ``ForwardBackwardTask``, batchify and transform). Last,
the loop of ``scripts/detection/ssd/train_ssd.py`` with gluonmine's
``SSDMultiBoxLoss`` where the script builds GluonCV's.
"""
import collections

import mxnet as mx
import numpy as np
import pytest
from gluoncv.data.batchify import FasterRCNNTrainBatchify, MaskRCNNTrainBatchify, Stack, Tuple
from gluoncv.data.sampler import SplitSortedBucketSampler
from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform
from gluoncv.loss import SSDMultiBoxLoss as GluonCVSSDMultiBoxLoss
from gluoncv.model_zoo.rcnn.faster_rcnn.data_parallel import ForwardBackwardTask
from gluoncv.utils.metrics.rcnn import (RCNNAccMetric, RCNNL1LossMetric, RPNAccMetric,
                                        RPNL1LossMetric)
from mxnet import autograd, gluon

from gluonmine.data import SyntheticVOCDetection
from gluonmine.losses import SSDMultiBoxLoss
from gluonmine.models import tiny_faster_rcnn, tiny_faster_rcnn_fpn, tiny_mask_rcnn, tiny_ssd
from gluonmine.rcnn import rcnn_sampler_for
from gluonmine.rcnn_target import RCNNTargetSampler
from gluonmine.rpn import RPNTargetGenerator
from gluonmine.transforms import FasterRCNNTrainTransform, MaskRCNNTrainTransform

BATCH = 2


def c4_net(classes):
    return tiny_faster_rcnn(classes, per_device_batch_size=BATCH)


def fpn_net(classes):
    return tiny_faster_rcnn_fpn(classes, per_device_batch_size=BATCH)


def _counted(forward, calls, key):
    def counting(self, *args):
        calls[key] += 1
        return forward(self, *args)
    return counting


def four_images(voc_root):
    """(classes, four training images with objects, as every VOC image has), seeded."""
    mx.random.seed(0)
    np.random.seed(0)
    images = SyntheticVOCDetection(voc_root, splits=((2007, 'train'),))
    return images.classes, images.take(12).filter(lambda item: len(item[1]) > 0).take(4)


def count_sampler_calls(monkeypatch):
    """gluonmine's samplers must be the ones that run: a Counter of their calls."""
    calls = collections.Counter()
    for block in (RPNTargetGenerator, RCNNTargetSampler):
        monkeypatch.setattr(block, 'forward', _counted(block.forward, calls, block))
    return calls


def sgd(net):
    """The script's trainer."""
    return gluon.Trainer(net.collect_train_params(), 'sgd',
                         {'learning_rate': 0.01, 'wd': 5e-4, 'momentum': 0.9})


def box_losses():
    """The script's RPN and RCNN losses: classification and box, each stage."""
    return [gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=False),
            gluon.loss.HuberLoss(rho=1. / 9.), gluon.loss.SoftmaxCrossEntropyLoss(),
            gluon.loss.HuberLoss()]


def steps(task, trainer, loader):
    """The script's iterations, one CPU context: yields (shard, forward_backward result)."""
    net = task.net
    net.hybridize(static_alloc=True)
    for batch in loader:
        # split_and_load: images and labels come unsharded, targets in shards
        shard = [(part[0] if isinstance(part, (list, tuple)) else part).as_in_context(mx.cpu())
                 for part in batch]
        result = task.forward_backward(shard)
        trainer.step(BATCH)
        yield shard, result


def train_loader(net, dataset, train_transform, use_fpn):
    """The script's ``get_dataloader`` (one shard, no workers), its transform class given."""
    sampler = SplitSortedBucketSampler([1.] * len(dataset), BATCH, shuffle=True)
    return mx.gluon.data.DataLoader(dataset.transform(
        train_transform(net.short, net.max_size, net, ashape=net.ashape, multi_stage=use_fpn)),
        batch_sampler=sampler, batchify_fn=FasterRCNNTrainBatchify(net, 1))


@pytest.mark.filterwarnings('ignore:Constant parameter')     # the script's grad_req setting
@pytest.mark.parametrize('make_net, use_fpn', [(c4_net, False), (fpn_net, True)])
def test_two_iterations_of_gluoncvs_loop(voc_root, make_net, use_fpn, monkeypatch):
    classes, dataset = four_images(voc_root)
    calls = count_sampler_calls(monkeypatch)
    net = make_net(classes)
    net.initialize()
    net.sampler = rcnn_sampler_for(net)                                  # swap 1
    loader = train_loader(net, dataset, FasterRCNNTrainTransform, use_fpn)  # swap 2
    net.collect_params().setattr('grad_req', 'null')
    net.collect_train_params().setattr('grad_req', 'write')
    trainer = sgd(net)
    task = ForwardBackwardTask(net, trainer, *box_losses(), mix_ratio=1.0, amp_enabled=False)
    metrics = [RPNAccMetric(), RPNL1LossMetric(), RCNNAccMetric(), RCNNL1LossMetric()]
    iterations = 0
    for shard, result in steps(task, trainer, loader):
        for metric, (labels, preds) in zip(metrics, result[4:]):
            metric.update(labels, preds)
        losses = np.array([loss.asscalar() for loss in result[:4]])
        assert np.isfinite(losses).all() and (losses > 0).all()
        rpn_cls_targets = shard[2].asnumpy()             # (B, anchors of all levels)
        assert ((rpn_cls_targets >= 0).sum(axis=1) == 256).all()     # the RPN quota
        rcnn_targets = result[6][0][0].asnumpy()         # RCNN class targets, (B, num_sample)
        assert rcnn_targets.shape == (BATCH, net.sampler.num_sample)
        assert ((rcnn_targets > 0).sum(axis=1) <= net.sampler.max_pos).all()
        iterations += 1
    assert iterations == 2 and isinstance(net.sampler, RCNNTargetSampler)
    # the RPN targets once an image (the transform), the RCNN sampler at least once (in the
    # hybridized net's graph)
    assert calls[RPNTargetGenerator] == 4 and calls[RCNNTargetSampler] >= 1
    assert all(np.isfinite(metric.get()[1]) for metric in metrics)
    assert np.abs(net.class_predictor.weight.data().asnumpy()).sum() > 0


def with_polygons(image, label):
    """A detection item as a Mask R-CNN dataset gives it: (image, label, one polygon an
    object), here each object's box as its polygon."""
    return image, label, [[np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], 'float32')]
                          for x1, y1, x2, y2 in label[:, :4]]


@pytest.mark.filterwarnings('ignore:Constant parameter')
def test_two_iterations_of_gluoncvs_mask_rcnn_loop(voc_root, monkeypatch):
    from gluoncv.model_zoo.rcnn.mask_rcnn.data_parallel import \
        ForwardBackwardTask as MaskForwardBackwardTask   # pylint: disable=import-outside-toplevel
    classes, dataset = four_images(voc_root)
    calls = count_sampler_calls(monkeypatch)
    net = tiny_mask_rcnn(classes, per_device_batch_size=BATCH)
    net.initialize()
    net.sampler = rcnn_sampler_for(net)                                  # swap 1
    transform = MaskRCNNTrainTransform(net.short, net.max_size, net, ashape=net.ashape,
                                       multi_stage=False)                # swap 2
    loader = mx.gluon.data.DataLoader(
        dataset.transform(with_polygons).transform(transform),
        batch_sampler=SplitSortedBucketSampler([1.] * len(dataset), BATCH, shuffle=True),
        batchify_fn=MaskRCNNTrainBatchify(net, 1))
    trainer = sgd(net)
    task = MaskForwardBackwardTask(net, trainer, *box_losses(),
                                   gluon.loss.SigmoidBinaryCrossEntropyLoss(), amp_enabled=False)
    iterations = 0
    for shard, result in steps(task, trainer, loader):
        losses = np.array([loss.asscalar() for loss in result[:5]])      # rpn, rcnn, mask
        assert np.isfinite(losses).all() and (losses > 0).all()
        assert ((shard[3].asnumpy() >= 0).sum(axis=1) == 256).all()     # the RPN quota
        iterations += 1
    assert iterations == 2 and isinstance(net.sampler, RCNNTargetSampler)
    assert calls[RPNTargetGenerator] == 4 and calls[RCNNTargetSampler] >= 1
    assert np.abs(net.mask.mask.weight.data().asnumpy()).sum() > 0


def ssd_loader(net, dataset, size):
    """The SSD script's ``get_dataloader``: targets made per image by GluonCV's transform,
    from the anchors of one training-mode forward."""
    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, size, size)))
    transform = SSDDefaultTrainTransform(size, size, anchors.as_in_context(mx.cpu()))
    return mx.gluon.data.DataLoader(dataset.transform(transform), BATCH, shuffle=True,
                                    batchify_fn=Tuple(Stack(), Stack(), Stack()),
                                    last_batch='rollover')


def test_two_iterations_of_gluoncvs_ssd_loop(voc_root):
    classes, dataset = four_images(voc_root)
    net = tiny_ssd(classes)
    net.initialize()
    loader = ssd_loader(net, dataset, 128)
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), 'sgd',
                            {'learning_rate': 0.001, 'wd': 5e-4, 'momentum': 0.9})
    mbox_loss = SSDMultiBoxLoss()                       # the swap
    reference = GluonCVSSDMultiBoxLoss()
    metrics = [mx.metric.Loss('CrossEntropy'), mx.metric.Loss('SmoothL1')]
    weight = net.class_predictors[0].predictor.weight
    before = weight.data().asnumpy()
    iterations = 0
    for batch in loader:
        data, cls_targets, box_targets = [
            gluon.utils.split_and_load(part, ctx_list=[mx.cpu()], batch_axis=0)
            for part in batch]
        with autograd.record():
            cls_preds, box_preds = zip(*[net(x)[:2] for x in data])
            sum_loss, cls_loss, box_loss = mbox_loss(cls_preds, box_preds, cls_targets,
                                                     box_targets)
            autograd.backward(sum_loss)
        expected = reference(cls_preds, box_preds, cls_targets, box_targets)
        for ours, theirs in zip((sum_loss, cls_loss, box_loss), expected):
            np.testing.assert_allclose(ours[0].asnumpy(), theirs[0].asnumpy(), rtol=1e-5)
        trainer.step(1)
        for metric, losses in zip(metrics, (cls_loss, box_loss)):
            metric.update(0, [loss * batch[0].shape[0] for loss in losses])
        iterations += 1
    assert iterations == 2
    assert all(np.isfinite(metric.get()[1]) and metric.get()[1] > 0 for metric in metrics)
    assert not np.array_equal(weight.data().asnumpy(), before)
