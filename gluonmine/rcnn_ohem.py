"""OHEM training for a GluonCV Faster R-CNN: the paper's scheme, composed from the net's blocks.

Shape shorthand: B images, P proposals an image, M ground truths, R = P + M
candidate RoIs (the proposals, then the ground truths appended), K RoIs mined
an image, C foreground classes. samples: +1 positive, -1 negative, 0 ignore;
class targets: 0 background, 1..C a class, -1 ignore.

Online hard example mining (Shrivastava, Gupta and Girshick, CVPR 2016,
Sec. 4): a read-only pass of the RoI network over every candidate RoI, the
loss of each, the hardest ones after NMS, then forward and backward of the
RoI network over those only. In a GluonCV training loop, one call changes::

    from gluonmine.rcnn_ohem import OHEMFasterRCNN
    ohem = OHEMFasterRCNN(net)                  # once, after net.initialize()
    ohem.hybridize(static_alloc=True)           # optional, as for the net
    ...
    with autograd.record():
        (cls_pred, box_pred, roi, samples, matches, rpn_score, rpn_box, anchors, cls_targets,
         box_targets, box_masks, _, stats) = ohem(data, gt_box, gt_label)  # was net(...)
        # GluonCV's RPN and RCNN losses, unchanged
"""
# pylint: disable=arguments-differ, invalid-name
import collections

import numpy as np
from gluoncv.model_zoo.rcnn.faster_rcnn.faster_rcnn import FasterRCNN
from gluoncv.model_zoo.rcnn.mask_rcnn.mask_rcnn import MaskRCNN
from gluoncv.nn.coder import MultiClassEncoder
from mxnet import autograd, gluon
from mxnet import ndarray as nd

from . import _checks, _ops, boxes
from .losses import check_miner, check_smooth_l1_args, normalized_sums, rcnn_losses
from .ohem import HardExampleMiner
from .rcnn_target import RCNNTargetSampler

#: Box target normalization of GluonCV's FasterRCNN (its RCNNTargetGenerator and
#: box_decoder use these fixed defaults; the net does not expose them).
BOX_STDS = (.1, .1, .2, .2)
#: Edges of the histogram of the selected negatives' best IoU: width 0.05 from 0 to
#: 0.5 (the negative band of Fast R-CNN); an IoU at or above 0.5 counts in the last bin.
NEGATIVE_IOU_EDGES = tuple(np.round(np.arange(0., 0.55, 0.05), 2).tolist())
_BIN = 0.05
_NUM_BINS = len(NEGATIVE_IOU_EDGES) - 1

#: What the training recipe logs, each per image: positives and negatives selected
#: (B,), mean read-only loss of the selected RoIs and of every labelled candidate
#: (B,), and the histogram (B, 10) of the selected negatives' best IoU.
OHEMStats = collections.namedtuple(
    'OHEMStats', 'num_positives num_negatives mined_loss all_loss negative_ious')
#: GluonCV's FasterRCNN training outputs, in its order, over the selected RoIs; then the stats.
OHEMOutputs = collections.namedtuple(
    'OHEMOutputs', 'cls_pred box_pred rois samples matches rpn_score rpn_box anchors '
                   'cls_targets box_targets box_masks indices stats')
# every candidate RoI of each image with its label and targets, all (B, R, ...)
_Candidates = collections.namedtuple(
    '_Candidates', 'rois samples matches cls_target box_target box_mask best')
# what reaches the outputs of the selected RoIs: all fields but ``best``, (B, K, ...)
_Chosen = collections.namedtuple('_Chosen', _Candidates._fields[:6])
# the fill of an empty slot (fewer RoIs mined than K), field by field
_EMPTY = _Candidates(rois=-1., samples=0., matches=0., cls_target=-1., box_target=0.,
                     box_mask=0., best=0.)


class OHEMFasterRCNN(gluon.Block):
    """Train a GluonCV FasterRCNN's head on its hardest RoIs: the paper's OHEM.

    One call replaces ``net(x, gt_box, gt_label)`` in a training loop and
    returns the same twelve outputs, in GluonCV's order, for the RoIs that
    OHEM selected (Shrivastava, Gupta and Girshick, CVPR 2016, Sec. 4), plus
    statistics. For each batch:

    1. the net's ``features`` and ``rpn`` run as in GluonCV's training
       forward (the RPN trains as usual, on its raw outputs ``rpn_score``,
       ``rpn_box`` and its ``anchors``);
    2. candidates: every proposal, then the ground truths appended, labelled
       by Fast R-CNN's rule (positive at IoU >= the net's ``pos_iou_thresh``,
       negative in ``[neg_iou_thresh_low, pos_iou_thresh)``, padding
       proposals and padding ground truths never), with GluonCV's class and
       per-class box targets;
    3. a read-only pass, nothing recorded: the head (RoI pooling,
       ``top_features``, ``box_features``, the predictors) on every
       candidate, its per-RoI loss (softmax cross-entropy + ``lambd`` x
       smooth L1, :func:`gluonmine.losses.rcnn_losses`) and the ``miner``'s
       selection (default: 64 RoIs an image, i.e. the paper's 128 per 2
       images, NMS at 0.7, ranked by that loss; ``bg_lo`` 0);
    4. the head again on the selected RoIs only, with gradient: the outputs.

    GluonCV's RCNN losses on these outputs (``cls_targets >= 0`` marks the
    selected RoIs, so its normalization counts them) are the OHEM loss, and
    gradients reach the head through the selected RoIs only.

    Three graphs, each a HybridBlock child (``hybridize()`` this block to
    hybridize them, and the net's blocks with them): ``proposals`` (features
    and RPN, recorded), ``mining`` (steps 2-3, called with autograd paused,
    so its head pass is never recorded and costs no backward; in one graph a
    stopped branch still runs its backward on MXNet 1.9) and ``head`` (step
    4, recorded). Any batch size works (the net's ``per_device_batch_size``
    is not read). The read-only pass runs the head in training mode, as
    mmdetection's OHEM does: BatchNorm layers of the head (GluonCV's ResNet
    heads freeze theirs) normalize it with the candidates' own batch
    statistics; MXNet updates running averages in the backward pass, so only
    the pass over the selected RoIs updates them. Call it inside
    ``autograd.record()`` (or ``autograd.train_mode()``).

    Reproduced from GluonCV, because ``FasterRCNN`` offers no call that runs
    its head on given RoIs: the 10 lines that pool RoIs and run the head,
    with FPN's level rule (``_pyramid_roi_feats`` adds rows that MXNet
    1.9's ``ROIAlign`` never wrote: garbage), and the per-class expansion of
    box targets (GluonCV's ``RCNNTargetGenerator`` keeps a static number of
    positive rows, which a variable number of candidates does not have).

    Parameters
    ----------
    net : gluoncv.model_zoo.FasterRCNN
        The network to train; its child blocks are used as they are (C4 or
        FPN).
    miner : HybridBlock, default None
        ``miner(cls_losses, loc_losses, boxes, samples, labels) -> (indices,
        mask)`` as :class:`~gluonmine.ohem.HardExampleMiner`; ``None``
        builds ``HardExampleMiner(64, 0.7, 'both', 1., lambd)``.
    rho : float, default 1.0
        Smooth L1 transition point of the per-RoI box loss, at least
        ``losses.RHO_MIN`` (1.5e-39; GluonCV's RCNN box loss uses 1).
    lambd : float, default 1.0
        Weight of the box loss in the per-RoI loss of the statistics and of
        the default miner, >= 0.
    neg_iou_thresh_low : float, default 0.0
        Negatives have IoU at least this (Fast R-CNN's ``bg_lo``: 0.1 there,
        0 in OHEM, which mines the background instead).

    Inputs:
        - **x**: (B, 3, H, W) float32 images.
        - **gt_box**: (B, M, 4) float32 ground truths, corner format, padding rows -1.
        - **gt_label**: (B, M, 1) or (B, M) float32 class ids in [0, C), padding -1.

    Outputs (an :data:`OHEMOutputs` namedtuple):
        - **cls_pred**: (B, K, C + 1) float32 class logits of the selected RoIs.
        - **box_pred**: (B, K, C, 4) float32 per-class boxes of the selected RoIs.
        - **rois**: (B, K, 4) float32 the selected RoIs in descending loss,
          (-1, -1, -1, -1) in empty slots.
        - **samples**: (B, K) float32, +1 positive, -1 negative, 0 empty slot.
        - **matches**: (B, K) float32 index of the best ground truth of every
          selected RoI, negatives included (the loss reads positives' only); 0
          in empty slots.
        - **rpn_score**: (B, A, 1) float32 raw RPN scores of the A anchors.
        - **rpn_box**: (B, A, 4) float32 raw RPN box predictions.
        - **anchors**: (1, A, 4) float32 the anchors (GluonCV's output).
        - **cls_targets**: (B, K) float32, 0 background, 1..C, -1 empty slot.
        - **box_targets**: (B, K, C, 4) float32 encoded targets (``BOX_STDS``).
        - **box_masks**: (B, K, C, 4) float32, 1 on a positive's class.
        - **indices**: (B, K) float32 the box row of each slot, 0..K-1
          (GluonCV's meaning; every slot has a box row here).
        - **stats**: :data:`OHEMStats` of (B,) arrays and the (B, 10)
          ``negative_ious`` histogram (edges :data:`NEGATIVE_IOU_EDGES`).
    """

    def __init__(self, net, miner=None, rho=1.0, lambd=1.0, neg_iou_thresh_low=0.0, **kwargs):
        super(OHEMFasterRCNN, self).__init__(**kwargs)
        _check_net(net)
        rho, lambd = check_smooth_l1_args(rho, lambd)
        if miner is not None:
            check_miner(miner)
        pos = net.sampler._pos_iou_thresh  # pylint: disable=protected-access
        low = _checks.check_number('neg_iou_thresh_low', neg_iou_thresh_low, 0., 1.)
        _checks.check_order('neg_iou_thresh_low', low, 'pos_iou_thresh of net', pos)
        with self.name_scope():
            self.net = net
            self.proposals = _Proposals(net)
            self.head = _RoIHead(net)
            self.mining = _ReadOnlyMining(
                self.head, HardExampleMiner(64, 0.7, 'both', 1., lambd) if miner is None
                else miner, RCNNTargetSampler(1, 1, 1, pos, 1., 1, neg_iou_thresh_low=low),
                net.num_class, rho, lambd)

    def forward(self, x, gt_box, gt_label):
        if not autograd.is_training():
            raise RuntimeError('OHEMFasterRCNN is a training step: call it inside '
                               'autograd.record() or autograd.train_mode()')
        gt_box, gt_label = _check_inputs(x, gt_box, gt_label)
        out = self.proposals(x)
        feat, (rpn_score, rpn_box, raw_score, raw_box, anchors) = out[:-5], out[-5:]
        feat = feat[:self.head.num_levels]                                  # P6 is never pooled
        if self.mining.num_image != x.shape[0]:     # the IoU step is one operator an image
            self.mining.num_image = x.shape[0]
            self.mining._clear_cached_op()  # pylint: disable=protected-access
        with autograd.pause(train_mode=True):
            mined = self.mining(rpn_box, rpn_score, gt_box, gt_label, *feat)
            chosen, stats = _Chosen(*mined[:6]), OHEMStats(*mined[6:])      # (B, K, ...)
            slots = _ops.column_index(nd, chosen.samples)                   # (B, K)
        cls_pred, box_pred = self.head(chosen.rois, *feat)   # (B, K, C + 1), (B, K, C, 4)
        return OHEMOutputs(cls_pred, box_pred, chosen.rois, chosen.samples, chosen.matches,
                           raw_score, raw_box, anchors, chosen.cls_target, chosen.box_target,
                           chosen.box_mask, slots, stats)

    def __repr__(self):
        return '{}(miner={!r})'.format(self.__class__.__name__, self.mining.miner)


class _Proposals(gluon.HybridBlock):
    """The net's features and RPN as in its training forward: x -> (*feat, rpn outputs x 5)."""

    def __init__(self, net):
        super(_Proposals, self).__init__()
        with self.name_scope():
            self.features = net.features
            self.rpn = net.rpn

    def hybrid_forward(self, F, x):
        feat = _checks.as_list(self.features(x))                            # (B, ch, h, w) each
        return tuple(feat) + tuple(self.rpn(F.zeros_like(x), *feat))


class _RoIHead(gluon.HybridBlock):
    """The net's RoI network on given RoIs: rois (B, L, 4), *feat -> (B, L, C + 1), (B, L, C, 4).

    GluonCV's pooling and head from ``FasterRCNN.hybrid_forward``, which runs
    them only on its sampler's RoIs. FPN RoIs go to the level of GluonCV's
    ``_pyramid_roi_feats``; each level's rows of the other RoIs are zeroed
    before the levels are added (GluonCV adds them as ``ROIAlign`` leaves
    them: unwritten, whatever the memory held). A padding RoI (-1, -1, -1,
    -1) pools zeros: its batch index is set to -1, which ``ROIAlign`` and
    ``ROIPooling`` skip at no cost (much of the read-only pass when the RPN
    keeps fewer boxes than its post-NMS count), and its rows are then zeroed
    (MXNet 1.9's ``ROIAlign`` leaves them unwritten, and garbage there would
    reach the head's batch statistics).
    """

    def __init__(self, net):
        super(_RoIHead, self).__init__()
        # pylint: disable=protected-access
        # FPN levels pooled for the head: P6 never (GluonCV's rule)
        self._levels = None if net.num_stages == 1 else list(range(
            net._min_stage, net._max_stage if net._max_stage > 5 else net._max_stage + 1))
        self._roi = dict(mode=net._roi_mode, size=net._roi_size, strides=net._strides)
        self.num_levels = 1 if self._levels is None else len(self._levels)
        with self.name_scope():
            self.top_features = net.top_features
            self.box_features = net.box_features
            self.class_predictor = net.class_predictor
            self.box_predictor = net.box_predictor

    def hybrid_forward(self, F, rois, *feat):
        images = F.reshape(F.contrib.arange_like(rois, axis=0), shape=(-1, 1, 1))  # (B, 1, 1)
        x2 = F.slice_axis(rois, axis=-1, begin=2, end=3)                    # (B, L, 1)
        ids = F.where(x2 >= 0, F.broadcast_like(images, x2), -F.ones_like(x2))  # (B, L, 1)
        pooled = self._pool(F, list(feat), F.reshape(F.concat(ids, rois, dim=-1),
                                                     shape=(-3, 0)))        # (B * L, ch, h, w)
        live = F.reshape(ids, shape=(-1,)) >= 0                             # (B * L,)
        pooled = F.where(live, pooled, F.zeros_like(pooled))                # (B * L, ch, h, w)
        top = pooled if self.top_features is None else self.top_features(pooled)
        box_feat = F.contrib.AdaptiveAvgPooling2D(top, output_size=1) \
            if self.box_features is None else self.box_features(top)        # (B * L, ch', ...)
        cls_pred = self.class_predictor(box_feat)                           # (B * L, C + 1)
        box_pred = F.reshape(self.box_predictor(box_feat), shape=(0, -1, 4))  # (B * L, C, 4)
        return tuple(F.reshape_like(p, rois, lhs_begin=0, lhs_end=1, rhs_begin=0, rhs_end=2)
                     for p in (cls_pred, box_pred))                         # (B, L, ...)

    def _pool(self, F, feat, rois):
        """GluonCV's RoI pooling: rois (B * L, 5) -> (B * L, ch, h, w)."""
        mode, size, strides = self._roi['mode'], self._roi['size'], self._roi['strides']
        if self._levels is None:
            return _pool_level(F, mode, feat[0], rois, size, strides)
        level = _fpn_levels(F, rois, self._levels[0], self._levels[-1])     # (B * L,)
        pooled = []
        for i, stage in enumerate(self._levels):
            here = level == stage                                           # (B * L,)
            mine = F.where(here, rois, -F.ones_like(rois))                  # (B * L, 5)
            out = _pool_level(F, mode, feat[i], mine, size, strides[i])     # (B * L, ch, h, w)
            pooled.append(F.where(here, out, F.zeros_like(out)))
        return F.ElementWiseSum(*pooled)                                    # (B * L, ch, h, w)


def _pool_level(F, mode, feat, rois, size, stride):
    """One feature map's RoIPooling or RoIAlign, as GluonCV calls them."""
    if mode == 'pool':
        return F.ROIPooling(feat, rois, size, 1. / stride)
    return F.contrib.ROIAlign(feat, rois, size, 1. / stride, sample_ratio=2)


def _fpn_levels(F, rois, low, high):
    """GluonCV's FPN level of each RoI (Lin et al. 2017, Eq. 1): (B * L, 5) -> (B * L,)."""
    _, x1, y1, x2, y2 = F.split(rois, axis=-1, num_outputs=5)               # (B * L, 1) each
    area = (x2 - x1 + 1) * (y2 - y1 + 1)                                    # (B * L, 1)
    level = F.floor(4 + F.log2(F.sqrt(area) / 224. + 1e-6))                 # (B * L, 1)
    return F.reshape(F.clip(level, low, high), shape=(-1,))                 # (B * L,)


class _ReadOnlyMining(gluon.HybridBlock):
    """Steps 2-3: candidates with targets, the head on all of them, the miner's choice.

    (rpn_box, rpn_score, gt_box, gt_label, *feat) -> the 6 fields of
    :data:`_Chosen` (B, K, ...), then the 5 of :data:`OHEMStats`. Called with
    autograd paused: nothing here is recorded.
    """

    def __init__(self, head, miner, labeler, num_class, rho, lambd):
        super(_ReadOnlyMining, self).__init__()
        self._num_class, self._rho, self._lambd = num_class, rho, lambd
        self.num_image = None       # B of the graph; OHEMFasterRCNN sets it
        with self.name_scope():
            self.head = head
            self.miner = miner
            self.labeler = labeler      # only its candidate rule, label_candidates, is used
            self.class_encoder = MultiClassEncoder()

    def hybrid_forward(self, F, proposals, scores, gt_box, gt_label, *feat):
        candidates = self._candidates(F, proposals, scores, gt_box, gt_label)  # (B, R, ...)
        cls_pred, box_pred = self.head(candidates.rois, *feat)  # (B, R, C + 1), (B, R, C, 4)
        cls, box = rcnn_losses(F, cls_pred, box_pred, candidates.cls_target,
                               candidates.box_target, candidates.box_mask, self._rho)  # (B, R) x2
        index, mask = self.miner(cls, box, candidates.rois, candidates.samples,
                                 candidates.cls_target)                     # (B, K), (B, R)
        chosen = _Candidates(*[_ops.gather_rows(F, x, index, fill=fill)
                               for x, fill in zip(candidates, _EMPTY)])     # (B, K, ...)
        stats = _stats(F, candidates, chosen, mask, cls + self._lambd * box)
        return tuple(chosen[:6]) + tuple(stats)

    def _candidates(self, F, proposals, scores, gt_box, gt_label):
        """Every proposal and ground truth of each image, labelled, with targets (B, R, ...)."""
        rois = F.concat(proposals, gt_box, dim=1)                           # (B, R, 4)
        ious = boxes.per_image_iou(F, rois, gt_box, self.num_image)         # (B, R, M)
        samples = self.labeler.label_candidates(F, ious, scores, gt_box)    # (B, R)
        matches, best = _ops.masked_argmax(F, ious, ious >= 0)              # (B, R) each
        cls_target = self.class_encoder(samples, matches, gt_label)         # (B, R)
        box_target, box_mask = self._box_targets(F, rois, samples, matches, cls_target, gt_box)
        return _Candidates(rois, samples, matches, cls_target, box_target, box_mask,
                           F.maximum(best, 0))

    def _box_targets(self, F, rois, samples, matches, cls_target, gt_box):
        """GluonCV's per-class box targets and masks, RoI by RoI: -> (B, R, C, 4) each."""
        matched = _ops.gather_rows(F, gt_box, matches)                      # (B, R, 4)
        positive = F.broadcast_like(F.expand_dims(samples > 0, axis=-1), rois)  # (B, R, 4)
        codes = F.where(positive, boxes.encode(F, rois, matched, BOX_STDS),
                        F.zeros_like(rois))                                 # (B, R, 4)
        classes = F.one_hot(cls_target - 1, self._num_class)                # (B, R, C)
        box_mask = F.broadcast_mul(F.expand_dims(classes, axis=-1),
                                   F.expand_dims(positive, axis=2))         # (B, R, C, 4)
        return F.broadcast_like(F.expand_dims(codes, axis=2), box_mask), box_mask


def check_faster_rcnn(net):
    """``ValueError`` unless ``net`` is a GluonCV ``FasterRCNN``."""
    if not isinstance(net, FasterRCNN):
        raise ValueError('net must be a GluonCV FasterRCNN, got {!r}'.format(type(net)))


def _check_net(net):
    """A GluonCV ``FasterRCNN`` whose RoI mode this step can reproduce, not a Mask R-CNN."""
    check_faster_rcnn(net)
    if isinstance(net, MaskRCNN):
        raise ValueError('net is a Mask R-CNN: OHEMFasterRCNN trains the box head only, and '
                         "its outputs are not MaskRCNN's; its RCNN sampler can still be "
                         "gluonmine's (net.sampler = rcnn_sampler_for(net))")
    # pylint: disable=protected-access
    if net._roi_mode not in ('pool', 'align'):
        raise ValueError('net has roi_mode {!r}: only pool and align exist'.format(
            net._roi_mode))


def _check_inputs(x, gt_box, gt_label):
    """Check the shapes of a training batch; returns (gt_box, gt_label (B, M, 1)).

    A batch without ground-truth rows (M = 0) gets one padding row: the same
    candidates, and every box_iou has a column.
    """
    _checks.check_shape('x', x, '(B, 3, H, W)')
    _checks.check_shape('gt_box', gt_box, '(B, M, 4)', last=4)
    if _checks.is_array(gt_label) and gt_label.ndim == 2:
        gt_label = gt_label.expand_dims(axis=-1)                            # (B, M, 1)
    _checks.check_shape('gt_label', gt_label, '(B, M, 1)', last=1)
    for name, other in [('gt_box', gt_box), ('gt_label', gt_label)]:
        _checks.check_same(name, other, 0, 'x', x, 0)
    _checks.check_same('gt_label', gt_label, 1, 'gt_box', gt_box, 1)
    return _checks.padding_if_empty(gt_box), _checks.padding_if_empty(gt_label)


def _mean(F, x, mask):
    """Mean of the masked entries of each row, 0 for none: (B, L) x 2 -> (B,)."""
    return normalized_sums(F, x, mask, F.maximum(F.sum(mask, axis=1), 1))   # (B,)


def _stats(F, candidates, chosen, mask, loss):
    """:data:`OHEMStats` of one batch, each per image."""
    positive, negative = chosen.samples > 0, chosen.samples < 0             # (B, K) each
    bins = F.clip(F.floor(chosen.best / _BIN), 0, _NUM_BINS - 1)            # (B, K)
    histogram = F.sum(F.broadcast_mul(F.one_hot(bins, _NUM_BINS),
                                      F.expand_dims(negative, axis=-1)), axis=1)  # (B, bins)
    return OHEMStats(F.sum(positive, axis=1), F.sum(negative, axis=1), _mean(F, loss, mask),
                     _mean(F, loss, candidates.samples != 0), histogram)
