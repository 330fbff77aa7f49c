#!/usr/bin/env python
"""Train and evaluate a GluonCV Faster R-CNN with swappable samplers, offline.

With no arguments: makes the synthetic VOC dataset under data/synthetic_voc if
it is missing, trains GluonCV's ``FasterRCNN`` on a tiny backbone on the CPU
with gluonmine's RPN sampler, evaluates VOC07 AP per class after every epoch,
and writes runs/faster_rcnn.{params,json,png,log}. Flags are listed by
``--help`` and in recipes/README.md.

    python recipes/train_faster_rcnn.py
    python recipes/train_faster_rcnn.py --rpn-sampler gluoncv --rcnn-sampler gluoncv
    python recipes/train_faster_rcnn.py --device-targets --batch-size 4 --lr 0.04

Samples: +1 positive, -1 negative, 0 ignore; RPN targets keep GluonCV's
+1 positive, 0 negative, -1 ignore.
"""
import argparse
import collections
import importlib

import mxnet as mx
from gluoncv.data.batchify import FasterRCNNTrainBatchify, Pad, Tuple
from gluoncv.data.transforms.presets.rcnn import (FasterRCNNDefaultTrainTransform,
                                                  FasterRCNNDefaultValTransform)
from gluoncv.model_zoo import get_model
from mxnet import autograd, gluon

import arguments
import entry
import loaders
import parallel
import selection_stats
import training
from gluonmine.data import NonEmptyLabels, PadEmptyLabels
from gluonmine.models import tiny_faster_rcnn, tiny_faster_rcnn_fpn
from gluonmine.rpn import RPNTargetSampler
from gluonmine.transforms import FasterRCNNTrainTransform

# --network: the tiny networks' builders, then GluonCV model zoo names (built without any
# pretrained weights)
TINY_NETWORKS = {'tiny': tiny_faster_rcnn, 'tiny_fpn': tiny_faster_rcnn_fpn}
ZOO_NETWORKS = {'resnet50_v1b': 'faster_rcnn_resnet50_v1b_voc',
                'resnet101_v1d': 'faster_rcnn_resnet101_v1d_voc',
                'fpn_resnet50_v1b': 'faster_rcnn_fpn_resnet50_v1b_coco'}
LOSSES = ('rpn_cls', 'rpn_box', 'rcnn_cls', 'rcnn_box', 'total')
RPN_NUM_SAMPLE = 256        # anchors sampled per image, both RPN samplers

# one device's part of a batch; rpn_targets is None and im_hw given with --device-targets
Shard = collections.namedtuple('Shard', 'data label rpn_targets im_hw')
# what a training step returns: losses (name -> (B,) NDArray) and what the sampler statistics
# read: rpn_cls_targets (B, N), rois (B, S, 4), samples (B, S), gt_boxes (B, M, 4), and
# mining = (mined loss mean, all-candidates loss mean), (1,) NDArrays, or None
StepOutput = collections.namedtuple('StepOutput',
                                    'losses rpn_cls_targets rois samples gt_boxes mining')
# the data side of the samplers: the training transform and, with --device-targets, the
# device-side RPN target generator (else None)
Samplers = collections.namedtuple('Samplers', 'transform generator')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--network', choices=sorted({**TINY_NETWORKS, **ZOO_NETWORKS}),
                        default='tiny',
                        help='tiny: gluonmine.models.tiny_faster_rcnn (C4); tiny_fpn: '
                             'tiny_faster_rcnn_fpn (ResNet-18 FPN, 128 px); others: GluonCV '
                             'model zoo, randomly initialised (default: %(default)s)')
    parser.add_argument('--rpn-sampler', choices=('gluoncv', 'gluonmine'), default='gluonmine',
                        help="anchor sampling: GluonCV's transform or gluonmine's "
                             'RPNTargetSampler (default: %(default)s)')
    parser.add_argument('--rcnn-sampler', choices=('gluoncv', 'random', 'ohem'),
                        default='random',
                        help="RoI sampling: GluonCV's RCNNTargetSampler, gluonmine's "
                             '(random within quotas), or OHEM (default: %(default)s)')
    parser.add_argument('--rpn-clobber-positives', action='store_true',
                        help="gluonmine's RPN sampler with GluonCV's rule: the negative rule "
                             'applied after the argmax-forced positives, so a best anchor '
                             'under IoU 0.3 is a negative (default: off, the Faster R-CNN '
                             "paper's rule, forced positives stay)")
    parser.add_argument('--rpn-min-forced-iou', type=float, default=0., metavar='IOU',
                        help="gluonmine's RPN sampler: a ground truth forces its best anchors "
                             'positive only when their IoU is above IOU; below, they take '
                             'the threshold rule (default: %(default)s, every ground truth '
                             'forces)')
    parser.add_argument('--device-targets', action='store_true',
                        help='make RPN targets in the training step on the device '
                             '(gluonmine RPN sampler only) instead of in the DataLoader')
    arguments.add_common_args(parser, save_prefix='runs/faster_rcnn', epochs=12, lr=0.02,
                           batch_size=2)
    args = parser.parse_args(argv)
    arguments.check_common_args(parser, args)
    if not 0. <= args.rpn_min_forced_iou < 1.:
        parser.error('--rpn-min-forced-iou must be in [0, 1), got {}'.format(
            args.rpn_min_forced_iou))
    for flag in ('device_targets', 'rpn_clobber_positives', 'rpn_min_forced_iou'):
        if getattr(args, flag) and args.rpn_sampler != 'gluonmine':
            parser.error('--{} is about gluonmine\'s RPN sampler: use --rpn-sampler '
                         'gluonmine'.format(flag.replace('_', '-')))
    return args


def build_net(args, classes, ctx):
    """The Faster R-CNN (GluonCV's class) for ``classes``, initialised on ``ctx``."""
    per_device = args.batch_size // len(ctx)
    if args.network in TINY_NETWORKS:
        net = TINY_NETWORKS[args.network](classes, per_device_batch_size=per_device)
        net.initialize(ctx=ctx)
    else:
        net = get_model(ZOO_NETWORKS[args.network], pretrained=False, pretrained_base=False,
                        per_device_batch_size=per_device)
        net.initialize(ctx=ctx)
        net.reset_class(classes)
    return net


def _require(flag, module, attribute):
    """``module.attribute``, or exit with a message saying which gluonmine piece is missing."""
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        raise SystemExit('{} needs {}.{}, which this gluonmine does not provide yet'.format(
            flag, module, attribute))


def build_sampler(args, net):
    """Install the ``--rcnn-sampler`` in ``net``; return the data side of the ``--rpn-sampler``.

    'random' puts gluonmine's RCNNTargetSampler, with the settings of the net's
    own, in place of GluonCV's; 'gluoncv' keeps GluonCV's, and 'ohem' leaves the
    RoI selection to the OHEM step (:func:`build_step`).
    """
    if args.rcnn_sampler == 'random':
        net.sampler = _require('--rcnn-sampler random', 'gluonmine.rcnn',
                               'rcnn_sampler_for')(net)
    if args.rpn_sampler == 'gluoncv':
        transform = PadEmptyLabels(FasterRCNNDefaultTrainTransform(
            net.short, net.max_size, net, num_sample=RPN_NUM_SAMPLE, ashape=net.ashape,
            multi_stage=net.num_stages > 1))
        return Samplers(transform, None)
    # in DataLoader workers each image's anchor draws are seeded from its draw's NumPy
    # state (loaders.SeededDraws), so that they do not depend on which worker makes it; in
    # the training process they follow the run's mx.random stream
    transform = FasterRCNNTrainTransform(
        net.short, net.max_size, net, num_sample=RPN_NUM_SAMPLE, ashape=net.ashape,
        multi_stage=net.num_stages > 1, device_targets=args.device_targets,
        seed_from_numpy=args.num_workers > 0, sampler=rpn_sampler(args))
    # the transform's generator is hybridized already
    return Samplers(transform, transform.target_generator if args.device_targets else None)


def rpn_sampler(args):
    """gluonmine's ``RPNTargetSampler`` with the run's rule flags, ``RPN_NUM_SAMPLE`` anchors
    an image (the paper's rule when no flag is given)."""
    return RPNTargetSampler(RPN_NUM_SAMPLE, clobber_positives=args.rpn_clobber_positives,
                            min_forced_iou=args.rpn_min_forced_iou)


def test_short(net):
    """The image's shorter side at test time: the net's ``short`` (its last, when a list)."""
    return net.short[-1] if isinstance(net.short, (list, tuple)) else net.short


def build_dataloader(args, net, samplers, train_set, val_set, dist, ctx):
    """(train loader of this worker's shard, validation loader)."""
    if samplers.generator is None:
        batchify = FasterRCNNTrainBatchify(net, len(ctx))
    else:       # images padded together, their real (height, width), padded labels
        batchify = Tuple(Pad(axis=(1, 2), pad_val=0, num_shards=len(ctx), ret_length=True),
                         Pad(pad_val=-1, num_shards=len(ctx)))
    train = loaders.train_loader(train_set.transform(samplers.transform), args.batch_size,
                                NonEmptyLabels(batchify), args.num_workers, dist, args.seed)
    return train, build_val_loader(args, net, val_set, ctx)


def build_val_loader(args, net, val_set, ctx):
    """Validation batches: GluonCV's test-time resize to the net's short side."""
    transform = FasterRCNNDefaultValTransform(test_short(net), net.max_size)
    return loaders.val_loader(val_set, transform, len(ctx), args.num_workers)


def build_evaluation(args, classes, ctx, val_set):
    """(net, validation loader) as training builds them, for recipes/evaluate.py; the net
    for one image a device, as the validation batches hold, on any number of devices."""
    net = build_net(argparse.Namespace(**dict(vars(args), batch_size=len(ctx))), classes, ctx)
    return net, build_val_loader(args, net, val_set, ctx)


def split_batch(batch, ctx, device_targets):
    """A batch from the train loader as one :data:`Shard` per device."""
    if device_targets:
        (images, hw), labels = batch
        parts = [loaders.as_shards(images), loaders.as_shards(labels), loaders.as_shards(hw)]
        return [Shard(x.as_in_context(c), y.as_in_context(c), None,
                      h.astype('float32').as_in_context(c))
                for x, y, h, c in zip(*parts, ctx)]
    parts = [loaders.as_shards(part) for part in batch]
    return [Shard(x.as_in_context(c), y.as_in_context(c),
                  tuple(t.as_in_context(c) for t in targets), None)
            for (x, y, *targets), c in zip(zip(*parts), ctx)]


def faster_rcnn_losses(outputs, rpn_targets):
    """GluonCV's Faster R-CNN losses, each (B,): the RPN's over its sampled anchors,
    the head's over its labelled RoIs, both normalised as GluonCV's training script does."""
    cls_pred, box_pred, rpn_score, rpn_box = outputs[0], outputs[1], outputs[5], outputs[6]
    cls_targets, box_targets, box_masks = outputs[8], outputs[9], outputs[10]
    rpn_cls_targets, rpn_box_targets, rpn_box_masks = rpn_targets
    num_rpn = mx.nd.maximum((rpn_cls_targets >= 0).sum(), 1)
    num_rcnn = mx.nd.maximum((cls_targets >= 0).sum(), 1)
    losses = {
        'rpn_cls': gluon.loss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=False)(
            rpn_score.squeeze(axis=-1), rpn_cls_targets, rpn_cls_targets >= 0)
        * rpn_cls_targets.size / num_rpn,
        'rpn_box': gluon.loss.HuberLoss(rho=1. / 9)(rpn_box, rpn_box_targets, rpn_box_masks)
        * rpn_box.size / num_rpn,
        'rcnn_cls': gluon.loss.SoftmaxCrossEntropyLoss()(
            cls_pred, cls_targets, cls_targets.expand_dims(-1) >= 0)
        * cls_targets.size / num_rcnn,
        'rcnn_box': gluon.loss.HuberLoss()(box_pred, box_targets, box_masks)
        * box_pred.size / num_rcnn}
    losses['total'] = sum(losses.values())
    return losses


def forward_backward(model, shard, generator=None):
    """One device's training step: forward, GluonCV's losses, backward.

    ``model`` is the FasterRCNN itself (its ``net.sampler`` picks the RoIs) or
    gluonmine's ``OHEMFasterRCNN`` around it, which returns the same twelve
    outputs for the RoIs it mined, then its statistics.
    """
    gt_box = shard.label.slice_axis(axis=-1, begin=0, end=4)                  # (B, M, 4)
    gt_label = shard.label.slice_axis(axis=-1, begin=4, end=5)                # (B, M, 1)
    with autograd.record():
        outputs = model(shard.data, gt_box, gt_label)
        rpn_targets = shard.rpn_targets
        if rpn_targets is None:
            with autograd.pause():
                rpn_targets = generator(gt_box, outputs[7], shard.im_hw)     # (B, N), (B, N, 4) x2
        losses = faster_rcnn_losses(outputs, rpn_targets)
    losses['total'].backward()
    mining = None
    if len(outputs) > 12:       # OHEM: mean loss of the mined RoIs and of every candidate
        stats = outputs[12]     # read on the host by the statistics, after the update
        mining = (stats.mined_loss.mean(), stats.all_loss.mean())
    return StepOutput(losses, rpn_targets[0], outputs[2], outputs[3], gt_box, mining)


def build_step(args, net, samplers, trainer, ctx, dist):
    """The recipe's :data:`training.Step`: every device's step, then one update.

    With ``--rcnn-sampler ohem`` the step runs gluonmine's ``OHEMFasterRCNN``
    (Shrivastava et al. 2016: a read-only pass of the head over every
    candidate RoI, then forward and backward over the 64 hardest an image
    after NMS) in place of the net; everything else is the same.
    """
    model = net
    if args.rcnn_sampler == 'ohem':
        model = _require('--rcnn-sampler ohem', 'gluonmine.rcnn_ohem', 'OHEMFasterRCNN')(net)
        model.hybridize()
    else:
        # GluonCV makes its RCNN target generator at first use, initialised on the default
        # context only; as its ForwardBackwardTask does, give it every device's, or a run
        # on several fails at its first step
        net.target_generator.collect_params().reset_ctx(ctx)
    global_batch = args.batch_size * dist.num_workers

    def iteration(batch):
        outputs = [forward_backward(model, shard, samplers.generator)
                   for shard in split_batch(batch, ctx, args.device_targets)]
        trainer.step(global_batch)
        return outputs
    return training.Step(iteration, record_losses, record_stats)


def record_losses(outputs):
    """One iteration's losses (means over images); waits for the step to finish."""
    return {name: sum(o.losses[name].mean().asscalar() for o in outputs) / len(outputs)
            for name in LOSSES}


def record_stats(outputs, stats):
    """Add one iteration's sampler statistics."""
    for out in outputs:
        rpn = out.rpn_cls_targets.asnumpy()                                   # +1 / 0 / -1
        stats['rpn'].update((rpn == 1) * 1. - (rpn == 0))
        stats['rcnn'].update(out.samples.asnumpy(), out.rois.asnumpy(), out.gt_boxes.asnumpy())
        if out.mining is not None:
            stats['mining'].update(*[x.asscalar() for x in out.mining])


def new_stats():
    return {'rpn': selection_stats.SelectionStats(RPN_NUM_SAMPLE),
            'rcnn': selection_stats.SelectionStats(), 'mining': selection_stats.MiningStats()}


def trainable(net):
    """Parameters the trainer updates: GluonCV's ``collect_train_params`` with gradients."""
    net.collect_params().setattr('grad_req', 'null')
    for param in net.collect_train_params().values():
        if not isinstance(param, gluon.Constant):
            param.grad_req = 'write'
    return {name: p for name, p in net.collect_params().items() if p.grad_req != 'null'}


def main(argv=None):
    args = parse_args(argv)
    run = training.Run('train_faster_rcnn', args, LOSSES, defaults=vars(parse_args([])))
    ctx, classes = run.ctx, run.classes
    net = build_net(args, classes, ctx)
    samplers = build_sampler(args, net)
    loaders = build_dataloader(args, net, samplers, run.train_set, run.val_set, run.dist, ctx)
    params = trainable(net)
    trainer = parallel.build_trainer(params, args, run.iterations(loaders[0]), run.dist)
    step = build_step(args, net, samplers, trainer, ctx, run.dist)
    return run.train(net, params, trainer, step, loaders, new_stats,
                     net.hybridize)     # as GluonCV's script by default: no static_alloc


if __name__ == '__main__':
    entry.run_script(main, 'interrupted before training started')
