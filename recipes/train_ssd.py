#!/usr/bin/env python
"""Train and evaluate a GluonCV SSD with swappable hard negative miners, offline.

With no arguments: makes the synthetic VOC dataset under data/synthetic_voc if
it is missing, trains GluonCV's ``SSD`` class on a tiny backbone on the CPU with
gluonmine's hard negative mining, evaluates VOC07 AP per class after every
epoch, and writes runs/ssd.{params,json,png,log}. Flags are listed by
``--help`` and in recipes/README.md.

    python recipes/train_ssd.py
    python recipes/train_ssd.py --miner gluoncv
    python recipes/train_ssd.py --miner ohem

Shape shorthand: B images, N anchors, M ground truths, C classes. Samples:
+1 positive, -1 negative, 0 ignore; class targets: 0 background, 1..C a class.
"""
import argparse
import collections

import mxnet as mx
import numpy as np
from gluoncv.data.batchify import Pad, Stack, Tuple
from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform, SSDDefaultValTransform
from gluoncv.loss import SSDMultiBoxLoss as GluonCVSSDMultiBoxLoss
from gluoncv.model_zoo import get_model
from gluoncv.model_zoo.ssd.target import SSDTargetGenerator
from gluoncv.nn.coder import NormalizedBoxCenterDecoder
from mxnet import autograd, gluon
from mxnet import ndarray as nd

import arguments
import entry
import loaders
import parallel
import selection_stats
import training
from gluonmine.data import NonEmptyLabels
from gluonmine.hard_negative import HardNegativeMiner
from gluonmine.losses import (SSDMultiBoxLoss, class_losses, losses_over_devices, multibox_sums,
                              samples_from_targets)
from gluonmine.models import tiny_ssd
from gluonmine.ohem import HardExampleMiner

# --network: (GluonCV model-zoo builder or None for gluonmine.models.tiny_ssd, input size)
NETWORKS = {'tiny': (None, 128),
            'vgg16_atrous_300': ('ssd_300_vgg16_atrous_voc', 300),
            'mobilenet1.0_512': ('ssd_512_mobilenet1.0_voc', 512),
            'resnet50_v1_512': ('ssd_512_resnet50_v1_voc', 512)}
MINERS = ('gluoncv', 'gluonmine-hard-negative', 'ohem', 'random')
LOSSES = ('cls', 'box', 'total')
BOX_STDS = (0.1, 0.1, 0.2, 0.2)     # GluonCV's SSD box encoding
BOX_CLIP = 4.135                    # log(1000 / 16): decoded sides stay finite

# one device's part of a batch: images (B, 3, H, W), padded labels (B, M, 6)
Shard = collections.namedtuple('Shard', 'data label')
# what a device's step gives the statistics: losses (name -> (B,) NDArray), the predictions,
# the anchors (1, N, 4) centre format, targets, the ground-truth boxes (B, M, 4) and the
# samples (B, N) the loss trained on, when the loss reports them (else None)
StepOutput = collections.namedtuple(
    'StepOutput', 'losses cls_pred box_pred anchors cls_target gt_boxes mined')
# a --miner: loss(cls_preds, box_preds, cls_targets, box_targets, anchors), one list entry per
# device -> (sum, cls, box) lists of (B,), plus a list of the samples (B, N) it trained on
# when it reports them; otherwise select(cls_losses, cls_target, box_pred, anchors) -> samples
# (B, N) recomputes them for the statistics
Miner = collections.namedtuple('Miner', 'loss select')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--network', choices=sorted(NETWORKS), default='tiny',
                        help='tiny: gluonmine.models.tiny_ssd (128 px); others: GluonCV model '
                             'zoo, randomly initialised (default: %(default)s)')
    parser.add_argument('--miner', choices=MINERS, default='gluonmine-hard-negative',
                        help="negative selection: GluonCV's SSDMultiBoxLoss, gluonmine's "
                             'SSDMultiBoxLoss with HardNegativeMiner, OHEM (hard negatives '
                             'after NMS over the predicted boxes), or random negatives '
                             '(default: %(default)s)')
    parser.add_argument('--neg-pos-ratio', type=float, default=3.,
                        help='negatives trained per positive, every miner (default: %(default)s)')
    parser.add_argument('--ohem-iou', type=float, default=0.7,
                        help='--miner ohem: NMS threshold among the hard negatives '
                             '(default: %(default)s)')
    parser.add_argument('--ohem-max-negatives', type=int, default=256,
                        help='--miner ohem: negatives NMS visits in loss order until it has '
                             'kept this many an image (default: %(default)s)')
    arguments.add_common_args(parser, save_prefix='runs/ssd', epochs=50, lr=0.05, batch_size=16)
    args = parser.parse_args(argv)
    arguments.check_common_args(parser, args)
    if args.neg_pos_ratio < 0 or not 0 <= args.ohem_iou <= 1 or args.ohem_max_negatives < 1:
        parser.error('need --neg-pos-ratio >= 0, 0 <= --ohem-iou <= 1, --ohem-max-negatives >= 1')
    return args


def build_net(args, classes, ctx):
    """The SSD (GluonCV's class) for ``classes``, initialised on ``ctx``, and its input size."""
    name, size = NETWORKS[args.network]
    if name is None:
        net = tiny_ssd(classes, base_size=size)
        net.initialize(ctx=ctx)
    else:
        net = get_model(name, pretrained=False, pretrained_base=False)
        net.initialize(ctx=ctx)
        net.reset_class(classes)
    net.set_nms(nms_thresh=0.45, nms_topk=400)      # GluonCV's train_ssd.py evaluation
    return net, size


# ----------------------------------------------------------------------------- miners

class RandomNegativeMiner(gluon.HybridBlock):
    """SSD's quota of negatives drawn uniformly at random: the baseline of mining.

    Keeps every positive and ``floor(neg_pos_ratio * num_pos)`` negatives of
    each image, a uniform random subset (``HardNegativeMiner`` on uniform
    random keys in place of the losses; ``F.random``, seeded by ``mx.random.seed``).

    Parameters
    ----------
    neg_pos_ratio : float, default 3
        Negatives kept per positive.

    Inputs:
        - **losses**: (B, N) float32, read for its shape only.
        - **samples**: (B, N) float32, +1 positive, -1 negative, 0 ignore.

    Outputs:
        - **samples**: (B, N) float32, same convention; only negatives change.
    """

    def __init__(self, neg_pos_ratio=3, **kwargs):
        super(RandomNegativeMiner, self).__init__(**kwargs)
        with self.name_scope():
            self.quota = HardNegativeMiner(neg_pos_ratio)

    def hybrid_forward(self, F, losses, samples):  # pylint: disable=arguments-differ
        return self.quota(F.random.uniform_like(losses), samples)          # (B, N)


class NMSHardNegativeMiner(gluon.HybridBlock):
    """Online hard example mining for SSD: the hardest negatives that do not overlap.

    Per image, negatives are visited in descending loss and greedy NMS keeps
    one unless its box overlaps an already kept negative by IoU
    ``> iou_threshold`` (Shrivastava, Gupta and Girshick, CVPR 2016, Sec. 4:
    NMS at 0.7 so that near-duplicates do not count twice; gluonmine's
    ``HardExampleMiner``), until ``max_negatives`` are kept; then SSD's quota
    (Liu et al., ECCV 2016, Sec. 2.2) keeps the ``floor(neg_pos_ratio *
    num_pos)`` hardest of them (``HardNegativeMiner``). Every positive stays.
    With ``iou_threshold=1`` this is SSD's hard negative mining, as long as the
    quota stays within ``max_negatives``.

    Parameters
    ----------
    neg_pos_ratio : float, default 3
        Negatives kept per positive.
    iou_threshold : float, default 0.7
        NMS suppresses a negative above this IoU with a harder kept one.
    max_negatives : int, default 256
        Negatives NMS keeps at most per image (the quota's ceiling).

    Inputs:
        - **losses**: (B, N) float32 classification loss of each anchor.
        - **samples**: (B, N) float32, +1 positive, -1 negative, 0 ignore.
        - **boxes**: (B, N, 4) float32 corner boxes NMS compares (the decoded predictions).

    Outputs:
        - **samples**: (B, N) float32, same convention; only negatives change.
    """

    def __init__(self, neg_pos_ratio=3, iou_threshold=0.7, max_negatives=256, **kwargs):
        super(NMSHardNegativeMiner, self).__init__(**kwargs)
        with self.name_scope():
            self.nms = HardExampleMiner(max_negatives, iou_threshold, 'cls')
            self.quota = HardNegativeMiner(neg_pos_ratio)

    def hybrid_forward(self, F, losses, samples, boxes):  # pylint: disable=arguments-differ
        negatives = F.zeros_like(samples) - (samples < 0)                  # (B, N) -1 or 0
        _, kept = self.nms(losses, F.zeros_like(losses), boxes, negatives) # (B, N)
        return self.quota(losses, (samples > 0) - kept)                    # (B, N)


class OHEMMultiBoxLoss(gluon.HybridBlock):
    """SSD's multibox loss over every positive and the negatives :class:`NMSHardNegativeMiner`
    keeps; NMS compares the anchors' decoded box predictions.

    The loss of ``gluonmine.losses.MultiBoxLoss`` (per image, the softmax
    cross-entropy of the selected anchors plus the smooth L1 of the positives,
    both over the positives of the whole batch); only the miner differs.

    Parameters
    ----------
    neg_pos_ratio : float, default 3
        Negatives kept per positive.
    iou_threshold : float, default 0.7
        NMS threshold among the hard negatives.
    max_negatives : int, default 256
        Negatives NMS keeps at most per image.

    Inputs:
        - **cls_pred**: (B, N, C + 1) float32 logits, background first.
        - **box_pred**: (B, N, 4) float32 encoded box predictions.
        - **cls_target**: (B, N) float32, 0 background, 1..C a class.
        - **box_target**: (B, N, 4) float32 encoded targets, 0 off the positives.
        - **anchors**: (1, N, 4) float32 centre-format anchors.
        - **num_positives**: (1,) float32 positives of the batch over every device.

    Outputs:
        - **sum_losses**, **cls_losses**, **box_losses**: (B,) float32 each.
        - **mined**: (B, N) float32 the samples trained on: +1 positive, -1 mined
          negative, 0 otherwise.
    """

    def __init__(self, neg_pos_ratio=3, iou_threshold=0.7, max_negatives=256, **kwargs):
        super(OHEMMultiBoxLoss, self).__init__(**kwargs)
        with self.name_scope():
            self.decoder = NormalizedBoxCenterDecoder(BOX_STDS, clip=BOX_CLIP)
            self.miner = NMSHardNegativeMiner(neg_pos_ratio, iou_threshold, max_negatives)

    # pylint: disable=arguments-differ, too-many-arguments
    def hybrid_forward(self, F, cls_pred, box_pred, cls_target, box_target, anchors,
                       num_positives):
        cls = class_losses(F, cls_pred, cls_target)                         # (B, N)
        boxes = self.decoder(F.stop_gradient(box_pred), anchors)            # (B, N, 4)
        mined = self.miner(F.stop_gradient(cls), samples_from_targets(F, cls_target), boxes)
        return multibox_sums(F, cls, box_pred, cls_target, box_target, mined, num_positives,
                             1., 1.) + (mined,)                             # (B,) x 3, (B, N)


def gluoncv_selection(cls_losses, cls_target, ratio):
    """What GluonCV's ``SSDMultiBoxLoss`` trains on: every positive and the negatives of
    loss rank ``< ratio * num_pos`` in their image. (B, N) x 2 -> samples (B, N)."""
    positive = cls_target > 0                                               # (B, N)
    rank = (cls_losses * (positive - 1)).argsort(axis=1).argsort(axis=1)    # (B, N)
    hard = rank < (positive.sum(axis=1) * ratio).expand_dims(-1)            # (B, N)
    return positive - hard * (1 - positive)                                 # (B, N)


def build_miner(args):
    """The ``--miner``: its loss over the devices' lists, and what it selects."""
    ratio = args.neg_pos_ratio
    if args.miner == 'gluoncv':
        loss = GluonCVSSDMultiBoxLoss(negative_mining_ratio=ratio)
        return Miner(lambda cls, box, ct, bt, anchors: loss(cls, box, ct, bt),
                     lambda cls, ct, box, anchors: gluoncv_selection(cls, ct, ratio))
    if args.miner == 'ohem':
        ohem = OHEMMultiBoxLoss(ratio, args.ohem_iou, args.ohem_max_negatives)
        ohem.hybridize()
        # the positives counted over every device, as SSDMultiBoxLoss; the loss reports mined
        return Miner(lambda *lists: losses_over_devices(ohem, lists), None)
    # 'random': the statistics come from a second draw of the same rule, not the trained one
    miner = HardNegativeMiner(ratio) if args.miner == 'gluonmine-hard-negative' \
        else RandomNegativeMiner(ratio)
    loss = SSDMultiBoxLoss(miner=miner)
    loss.hybridize()
    return Miner(lambda cls, box, ct, bt, anchors: loss(cls, box, ct, bt),
                 lambda cls, ct, box, anchors: miner(cls, samples_from_targets(nd, ct)))


# ----------------------------------------------------------------------------- data

class ValTransform(object):
    """GluonCV's SSD validation transform, with the scale back to the original pixels.

    Images are resized to ``size`` x ``size`` and so are the labels; the third
    output, ``(W / size, H / size, W / size, H / size)`` for an image of W x H
    pixels, maps a box at that size back to the original image, as
    ``evaluation.detection_metric`` needs for COCO's metric (its ground truth is
    the annotation file's, and its small / medium / large areas are original
    pixels). VOC's IoU (no +1 offset) is the same at either size.
    """

    def __init__(self, size):
        self._size = size
        self._transform = SSDDefaultValTransform(size, size)

    def __call__(self, image, label):
        height, width = image.shape[:2]
        image, label = self._transform(image, label)
        x, y = width / self._size, height / self._size
        return image, label, mx.nd.array([x, y, x, y])


def build_dataloader(args, size, train_set, val_set, dist, ctx):
    """(train loader of this worker's shard, validation loader).

    Training images go through GluonCV's ``SSDDefaultTrainTransform`` (colour
    jitter, expansion, constrained crop, resize, flip) without anchors: the
    targets are made for the whole batch in the training step
    (:func:`ssd_targets`), where the miners also run.
    """
    batchify = NonEmptyLabels(Tuple(Stack(), Pad(pad_val=-1)))
    train = loaders.train_loader(train_set.transform(SSDDefaultTrainTransform(size, size)),
                                args.batch_size, batchify, args.num_workers, dist, args.seed)
    return train, build_val_loader(args, size, val_set, ctx)


def build_val_loader(args, size, val_set, ctx):
    """Validation batches: images resized to the net's ``size`` x ``size`` input."""
    return loaders.val_loader(val_set, ValTransform(size), len(ctx), args.num_workers)


def build_evaluation(args, classes, ctx, val_set):
    """(net, validation loader) as training builds them, for recipes/evaluate.py."""
    net, size = build_net(args, classes, ctx)
    return net, build_val_loader(args, size, val_set, ctx)


def split_batch(batch, ctx):
    """A batch (images, padded labels) as one :data:`Shard` per device."""
    parts = [gluon.utils.split_and_load(part, ctx, even_split=False) for part in batch]
    return [Shard(x, y) for x, y in zip(*parts)]


def target_generator():
    """GluonCV's ``SSDTargetGenerator`` as the training step uses it: IoU 0.5, box stds
    0.1, 0.1, 0.2, 0.2, no sampler (the miners choose the negatives)."""
    return SSDTargetGenerator(iou_thresh=0.5, stds=BOX_STDS, negative_mining_ratio=-1)


def ssd_targets(generator, anchors, label):
    """GluonCV's SSD targets for a batch: (cls_target (B, N), box_target (B, N, 4)).

    ``generator`` is GluonCV's ``SSDTargetGenerator`` without a sampler (what
    ``SSDDefaultTrainTransform`` runs per image), here on the whole padded
    batch. Box targets are zeroed off the positives: for an image with no
    object (padding rows only) GluonCV matches every anchor to the padding
    box, giving class 0 but NaN box targets.
    """
    gt_boxes = label.slice_axis(axis=-1, begin=0, end=4)                    # (B, M, 4)
    gt_ids = label.slice_axis(axis=-1, begin=4, end=5)                      # (B, M, 1)
    cls_target, box_target, _ = generator(anchors, None, gt_boxes, gt_ids)  # (B, N), (B, N, 4)
    positive = nd.broadcast_like((cls_target > 0).expand_dims(-1), box_target)
    return cls_target, nd.where(positive, box_target, nd.zeros_like(box_target))


# ----------------------------------------------------------------------------- training

def forward_backward(net, miner, generator, shards):
    """Every device's forward, targets, the miner's loss, and backward: one StepOutput each."""
    with autograd.record():
        preds = [net(shard.data) for shard in shards]        # (B, N, C + 1), (B, N, 4), anchors
        with autograd.pause():
            targets = [ssd_targets(generator, anchors, shard.label)
                       for (_, _, anchors), shard in zip(preds, shards)]
        cls_preds, box_preds, anchors = (list(x) for x in zip(*preds))
        cls_targets, box_targets = (list(x) for x in zip(*targets))
        results = miner.loss(cls_preds, box_preds, cls_targets, box_targets, anchors)
    sums, cls, box = results[:3]
    mined = results[3] if len(results) > 3 else [None] * len(sums)
    autograd.backward(sums)
    return [StepOutput({'cls': c, 'box': b, 'total': s}, cp, bp, a, ct,
                       shard.label.slice_axis(axis=-1, begin=0, end=4), m)
            for s, c, b, cp, bp, a, ct, shard, m in
            zip(sums, cls, box, cls_preds, box_preds, anchors, cls_targets, shards, mined)]


def build_step(args, net, miner, trainer, ctx, dist):
    """The recipe's :data:`training.Step`: forward and backward on every device, one update.

    The losses are already normalised by the positives of the batch, so the
    update sums the gradients (GluonCV's ``trainer.step(1)``), averaged over workers.
    """
    generator = target_generator()

    def run(batch):
        outputs = forward_backward(net, miner, generator, split_batch(batch, ctx))
        trainer.step(dist.num_workers)
        return outputs

    hardest = HardNegativeMiner(args.neg_pos_ratio)

    def record(outputs, stats):
        for out in outputs:
            record_selection(miner, hardest, out, stats)
    return training.Step(run, record_losses, record)


def record_losses(outputs):
    """One iteration's losses: the sum over the batch's images (the loss trained); waits."""
    return {name: sum(o.losses[name].sum().asscalar() for o in outputs) for name in LOSSES}


def record_selection(miner, hardest, out, stats):
    """Which anchors the miner trains on, their best IoU, their loss against all negatives',
    and how many of them SSD's hard negative mining (``hardest``) would also keep."""
    with autograd.pause():
        cls = class_losses(nd, out.cls_pred, out.cls_target)                # (B, N)
        samples = out.mined if out.mined is not None else miner.select(
            cls, out.cls_target, out.box_pred, out.anchors)                 # (B, N)
        top = hardest(cls, samples_from_targets(nd, out.cls_target))        # (B, N)
    samples, cls, top = samples.asnumpy(), cls.asnumpy(), top.asnumpy()
    corners = anchor_corners(out.anchors)                                   # (N, 4)
    stats['anchors'].update(samples, np.broadcast_to(corners, samples.shape + (4,)),
                            out.gt_boxes.asnumpy())
    mined = samples < 0
    if mined.any():
        stats['mining'].update(cls[mined].mean(), cls[out.cls_target.asnumpy() == 0].mean(),
                               (mined & (top < 0)).sum(), mined.sum())


def anchor_corners(anchors):
    """SSD's anchors (1, N, 4) NDArray (cx, cy, w, h) as NumPy corners (N, 4)."""
    centre = anchors.asnumpy()[0]
    return np.concatenate([centre[:, :2] - centre[:, 2:] / 2,
                           centre[:, :2] + centre[:, 2:] / 2], axis=1)


def mined_samples(miner, cls_pred, box_pred, cls_target, box_target, anchors):
    """What a :func:`build_miner` trains on for one device's batch: (B, N), +1 positive,
    -1 selected negative, 0 otherwise (its ``select``; OHEM, which has none, from its loss)."""
    with autograd.pause():
        if miner.select is None:
            return miner.loss([cls_pred], [box_pred], [cls_target], [box_target],
                              [anchors])[3][0]
        return miner.select(class_losses(nd, cls_pred, cls_target), cls_target, box_pred,
                            anchors)


class MinerStats(selection_stats.MiningStats):
    """Mean loss of the mined negatives against all negatives
    (``selection_stats.MiningStats``), and ``hardest_share``: the share of the mined
    negatives that SSD's hard negative mining keeps too (1 for it, lower where NMS or
    chance picks others)."""

    def __init__(self):
        super(MinerStats, self).__init__()
        self.shared, self.mined_count = 0, 0

    def update(self, mined_loss_mean, all_loss_mean, shared=0, mined=0):
        # pylint: disable=arguments-differ
        super(MinerStats, self).update(mined_loss_mean, all_loss_mean)
        self.shared += int(shared)
        self.mined_count += int(mined)

    def merge(self, other):
        super(MinerStats, self).merge(other)
        self.shared += other.shared
        self.mined_count += other.mined_count

    def summary(self):
        out = super(MinerStats, self).summary()
        if out is not None:
            out['hardest_share'] = self.shared / float(max(self.mined_count, 1))
        return out


def new_stats():
    return {'anchors': selection_stats.SelectionStats(), 'mining': MinerStats()}


def trainable(net):
    """Parameters the trainer updates (all but BatchNorm statistics), as GluonCV's script."""
    return {name: p for name, p in net.collect_params().items() if p.grad_req != 'null'}


def main(argv=None):
    args = parse_args(argv)
    run = training.Run('train_ssd', args, LOSSES, defaults=vars(parse_args([])))
    ctx, classes = run.ctx, run.classes
    net, size = build_net(args, classes, ctx)
    miner = build_miner(args)
    loaders = build_dataloader(args, size, run.train_set, run.val_set, run.dist, ctx)
    params = trainable(net)
    trainer = parallel.build_trainer(params, args, run.iterations(loaders[0]), run.dist)
    step = build_step(args, net, miner, trainer, ctx, run.dist)
    return run.train(net, params, trainer, step, loaders, new_stats,
                     lambda: net.hybridize(static_alloc=True, static_shape=True))  # as GluonCV's


if __name__ == '__main__':
    entry.run_script(main, 'interrupted before training started')
