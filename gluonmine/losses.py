"""Loss blocks that mine: per-candidate loss -> miner -> loss normalized over the selection.

Shape shorthand: B images, N candidates (anchors or RoIs), C foreground classes,
K the number of examples a miner selects per image. samples: +1 positive,
-1 negative, 0 ignore; mask: 1 selected, 0 not. Class targets follow GluonCV:
0 background, 1..C a class, -1 ignore.

Every loss here propagates gradients, so none is a ``SelectionBlock``: each
calls its miner (a ``SelectionBlock``) on ``F.stop_gradient`` inputs, and the
miner's output only decides which per-candidate losses are summed.
"""
# pylint: disable=arguments-differ, invalid-name
import numpy as np
from mxnet import autograd, gluon
from mxnet import ndarray as nd

from . import _checks, _ops
from ._block import CopyableBlock
from .hard_negative import HardNegativeMiner
from .ohem import HardExampleMiner


# ------------------------------------------------------------- per-candidate losses

#: The smallest smooth L1 transition point, a float32 (1.4693693e-39): the loss scales by
#: ``0.5 / rho``, which below this is inf in float32, and inf times a box error of exactly
#: 0 is NaN.
RHO_MIN = float(np.nextafter(np.float32(0.5 / float(np.finfo(np.float32).max)), np.float32(1)))


def huber(F, x, rho):
    """Smooth L1 of each entry, MXNet's ``HuberLoss``: |x| - rho/2 above rho, x^2/(2 rho) below."""
    x = F.abs(x)
    return F.where(x > rho, x - 0.5 * rho, (0.5 / rho) * F.square(x))


def class_losses(F, cls_pred, cls_target):
    """Softmax cross-entropy of each candidate.

    cls_pred: (B, N, C + 1) logits, background first; cls_target: (B, N)
    class ids, -1 ignore -> (B, N), exactly 0 where ignored.
    """
    picked = -F.pick(F.log_softmax(cls_pred, axis=-1), F.maximum(cls_target, 0), axis=-1)
    return F.where(cls_target >= 0, picked, F.zeros_like(picked))           # (B, N)


def box_losses(F, box_pred, box_target, box_mask, rho):
    """Masked smooth L1 summed over each candidate's coordinates.

    box_pred, box_target, box_mask: (B, N, ...) of one shape -> (B, N).
    """
    loss = huber(F, box_pred - box_target, rho) * box_mask                  # (B, N, ...)
    return F.sum(F.reshape(loss, shape=(0, 0, -1)), axis=-1)                # (B, N)


def rcnn_losses(F, cls_pred, box_pred, cls_target, box_target, box_mask, rho):
    """Per-RoI losses of a Faster R-CNN head, GluonCV's conventions.

    cls_pred (B, N, C + 1), cls_target (B, N); box_pred, box_target, box_mask
    (B, P, C, 4), per-class boxes and a mask that is 1 on the 4 coordinates
    of a positive's class only -> ``(cls, box)``, (B, N) and (B, P).
    """
    return (class_losses(F, cls_pred, cls_target),
            box_losses(F, box_pred, box_target, box_mask, rho))


def samples_from_targets(F, cls_target):
    """Samples from class targets: > 0 positive, 0 negative, < 0 ignore. (B, N) -> (B, N)."""
    return (cls_target > 0) - (cls_target == 0)                             # (B, N)


def normalized_sums(F, losses, mask, norm):
    """Each image's sum of its selected losses over ``norm``.

    losses, mask: (B, N); norm: (1,) or (B,) -> (B,). Unselected entries
    count 0, even NaN or infinite ones.
    """
    kept = F.where(mask, losses, F.zeros_like(losses))                      # (B, N)
    return F.broadcast_div(F.sum(kept, axis=1), norm)                       # (B,)


def multibox_sums(F, cls, box_pred, cls_target, box_target, mined, num_positives, rho,
                  lambd):
    """SSD's multibox loss of each image, from its anchors' class losses and a miner's choice.

    cls: (B, N) class loss of each anchor (:func:`class_losses`); box_pred: B * N * 4
    entries, read like box_target (B, N, 4); cls_target: (B, N); mined: (B, N)
    samples, nonzero where the class loss is trained; num_positives: (1,) the
    normalizer (at least 1 is used). The box loss covers the positives
    (``cls_target > 0``). Returns ``(cls + lambd * box, cls, box)``, (B,) each.
    """
    positive = cls_target > 0                                               # (B, N)
    box_mask = F.broadcast_like(F.expand_dims(positive, axis=-1), box_target)  # (B, N, 4)
    box = box_losses(F, F.reshape_like(box_pred, box_target), box_target, box_mask,
                     rho)                                                   # (B, N)
    norm = F.maximum(num_positives, 1)                                      # (1,)
    cls_loss = normalized_sums(F, cls, mined != 0, norm)                    # (B,)
    box_loss = normalized_sums(F, box, positive, norm)                      # (B,)
    return cls_loss + lambd * box_loss, cls_loss, box_loss


def per_image_norm(F, mask):
    """GluonCV's Faster R-CNN normalizer: the mean number selected per image, at least 1/B.

    mask: (B, N) -> (1,) ``max(1, total) / B``: dividing each image's sum by
    it makes the mean over images (what ``trainer.step(batch_size)``
    applies) the mean loss of a selected candidate (``train_faster_rcnn.py``).
    """
    per_image = F.sum(mask, axis=1)                                         # (B,)
    return F.maximum(F.sum(per_image), 1) / F.sum(F.ones_like(per_image))   # (1,)


# ------------------------------------------------------------- base

class _LossBlock(CopyableBlock):
    """A HybridBlock that checks its NDArray inputs (``check_inputs``) on every call.

    The loss is computed in float32: NDArray inputs of another dtype (float16
    predictions of a mixed-precision network) are cast first, and their
    gradients flow back through the cast in their own dtype.
    """

    def check_inputs(self, *args):
        """Validate the NDArray inputs; returns them (trailing ``None`` dropped)."""
        return args

    def forward(self, *args):
        args = list(self.check_inputs(*[_checks.as_float32(x) for x in args]))
        while args and args[-1] is None:
            args.pop()
        return super(_LossBlock, self).forward(*args)


def check_miner(miner):
    """``miner`` itself, checked to be a HybridBlock (``ValueError`` otherwise)."""
    if not isinstance(miner, gluon.HybridBlock):
        raise ValueError('miner must be a HybridBlock, got {!r}'.format(miner))
    return miner


def check_smooth_l1_args(rho, lambd):
    """``(rho, lambd)`` as the float32 values the loss computes with: the smooth L1
    transition point, at least :data:`RHO_MIN`, and the box loss weight, >= 0, both
    finite in float32 (``ValueError`` naming the argument otherwise)."""
    return (_checks.check_number('rho', rho, RHO_MIN, float('inf'), high_open=True,
                                 float32=True),
            _checks.check_number('lambd', lambd, 0., float('inf'), high_open=True,
                                 float32=True))


# ------------------------------------------------------------- SSD

class MultiBoxLoss(_LossBlock):
    r"""SSD's multibox loss on one device's batch, with a pluggable miner.

    The loss of ``gluoncv.loss.SSDMultiBoxLoss`` (Liu et al., ECCV 2016,
    Sec. 2.2) as a HybridBlock: per anchor i the softmax cross-entropy
    :math:`\ell_i = -\log p_{i, t_i}`; the miner keeps every positive and
    chooses negatives by :math:`\ell_i`; then, with :math:`P` the number of
    positives (``num_positives``, over every device when given),

    .. math::

        L_{cls} = \frac{1}{\max(1, P)} \sum_{i \in pos \cup mined} \ell_i, \qquad
        L_{box} = \frac{1}{\max(1, P)} \sum_{i \in pos} \sum_{k=1}^{4}
                  \mathrm{smoothL1}_\rho(\hat b_{ik} - b_{ik}), \qquad
        L = L_{cls} + \lambda L_{box},

    each per image. Without positives and without ``min_hard_negatives``
    nothing is selected and every loss is 0, with no branch on the host.

    Two deliberate differences from GluonCV: targets of -1 are ignored (no
    loss, never mined; GluonCV picks class 0 for them and ranks them as
    negatives), and a fractional ``negative_mining_ratio`` keeps
    ``floor(ratio * num_pos)`` negatives (GluonCV: the ceiling). With integer
    ratios such as SSD's 3 and targets in [0, C] the losses are GluonCV's.

    Parameters
    ----------
    negative_mining_ratio : float, default 3
        Negatives kept per positive, >= 0 (for the default miner).
    rho : float, default 1.0
        Smooth L1 transition point, > 0 (at least :data:`RHO_MIN`, 1.5e-39).
    lambd : float, default 1.0
        Weight of the box loss in the sum, >= 0.
    min_hard_negatives : int, default 0
        Negatives kept per image even without positives (for the default miner).
    miner : HybridBlock, default None
        ``miner(losses, samples) -> samples`` (B, N), keeping positives and
        choosing negatives; ``None`` builds
        ``HardNegativeMiner(negative_mining_ratio, min_hard_negatives)``.

    Inputs:
        - **cls_pred**: (B, N, C + 1) float32 class logits, background first.
        - **box_pred**: (B, N, 4) float32 box predictions (any shape with
          B * N * 4 entries, reshaped like ``box_target``).
        - **cls_target**: (B, N) float32, 0 background, 1..C a class, -1 ignore.
        - **box_target**: (B, N, 4) float32 encoded box targets.
        - **num_positives**: (1,) float32, optional: the positives of the
          whole batch over every device; by default this batch's own.

    Outputs:
        - **sum_losses**: (B,) float32, ``cls_losses + lambd * box_losses``.
        - **cls_losses**: (B,) float32.
        - **box_losses**: (B,) float32.
    """

    def __init__(self, negative_mining_ratio=3, rho=1.0, lambd=1.0, min_hard_negatives=0,
                 miner=None, **kwargs):
        super(MultiBoxLoss, self).__init__(**kwargs)
        ratio = _checks.check_number('negative_mining_ratio', negative_mining_ratio, 0.,
                                     float('inf'), high_open=True, float32=True)
        self._rho, self._lambd = check_smooth_l1_args(rho, lambd)
        minimum = _checks.check_int('min_hard_negatives', min_hard_negatives)
        with self.name_scope():
            self.miner = HardNegativeMiner(ratio, minimum) if miner is None \
                else check_miner(miner)

    def check_inputs(self, cls_pred, box_pred, cls_target, box_target, num_positives=None):
        _checks.check_shape('cls_pred', cls_pred, '(B, N, C)')
        _checks.check_shape('cls_target', cls_target, '(B, N)')
        _checks.check_shape('box_target', box_target, '(B, N, 4)', last=4)
        for name, x in [('cls_pred', cls_pred), ('box_target', box_target)]:
            _checks.check_same_leading(name, x, 'cls_target', cls_target)
        if _checks.is_array(box_pred) and box_pred.size != 4 * cls_target.size:
            raise ValueError('box_pred must hold B * N * 4 = {} entries, got shape {}'.format(
                4 * cls_target.size, box_pred.shape))
        if _checks.is_array(num_positives) and num_positives.shape != (1,):
            raise ValueError('num_positives must have shape (1,), got {}'.format(
                num_positives.shape))
        return cls_pred, box_pred, cls_target, box_target, num_positives

    def hybrid_forward(self, F, cls_pred, box_pred, cls_target, box_target, num_positives=None):
        if num_positives is None:
            num_positives = F.reshape(F.sum(cls_target > 0), shape=(1,))   # (1,)
        cls = class_losses(F, cls_pred, cls_target)                         # (B, N)
        mined = self.miner(F.stop_gradient(cls), samples_from_targets(F, cls_target))  # (B, N)
        return multibox_sums(F, cls, box_pred, cls_target, box_target, mined, num_positives,
                             self._rho, self._lambd)                        # (B,) x 3

    def __repr__(self):
        return '{}(rho={}, lambd={}, miner={!r})'.format(
            self.__class__.__name__, self._rho, self._lambd, self.miner)


def positives_over_devices(cls_targets):
    """The number of positives in the whole batch, on each device, without the host.

    cls_targets: one (B, N) NDArray per device (any dtype: counted in float32)
    -> one (1,) float32 NDArray per device, each the total. Each device counts
    its own positives; the counts are copied to the first device, added there,
    and the sum is copied back: asynchronous copies between devices that never
    wait for a value.
    """
    counts = [nd.reshape(nd.sum(_checks.as_float32(ct) > 0), shape=(1,))
              for ct in cls_targets]                                        # (1,) each
    if len(counts) == 1:
        return counts
    home = counts[0].context
    total = nd.add_n(*[count.as_in_context(home) for count in counts])      # (1,)
    return [total.as_in_context(count.context) for count in counts]


def losses_over_devices(loss, inputs):
    """A per-device multibox loss on every device, normalised by the batch's positives.

    loss: a block called with one device's inputs, then ``num_positives``
    (1,), returning a tuple of outputs (three (B,) losses for
    :class:`MultiBoxLoss`); inputs: one list per argument, one array per
    device, the third the class targets (B, N). The positives are counted over
    every device without the host (:func:`positives_over_devices`). Returns
    one list per output, one entry per device.
    """
    totals = positives_over_devices(inputs[2])                              # (1,) each
    results = [loss(*args) for args in zip(*(list(inputs) + [totals]))]
    return tuple(list(losses) for losses in zip(*results))


class SSDMultiBoxLoss(gluon.Block):
    r"""Drop-in for ``gluoncv.loss.SSDMultiBoxLoss``, with a pluggable miner and no host sync.

    Same constructor (plus ``miner``), same call on one NDArray or a list of
    them (one per device), same outputs: three lists of per-image losses,
    normalized by the number of positives over every device (see
    :class:`MultiBoxLoss` for the formula). GluonCV reads that number back to
    the host (``asscalar``) and branches on it; here the devices' counts meet
    on the first device by asynchronous copies and each device's part is a
    :class:`MultiBoxLoss` HybridBlock (child ``loss``; ``hybridize()`` this
    block to hybridize it), so the loss never stalls the devices.

    GluonCV returns (1,) zeros when the batch has no positive and
    ``min_hard_negatives`` is 0; here the losses are then (B,) zeros, the
    same shape as always. The other differences (ignored -1 targets, the floor
    of a fractional ratio) are those of :class:`MultiBoxLoss`.

    Parameters
    ----------
    negative_mining_ratio : float, default 3
        Negatives kept per positive, >= 0 (for the default miner).
    rho : float, default 1.0
        Smooth L1 transition point, > 0 (at least :data:`RHO_MIN`, 1.5e-39).
    lambd : float, default 1.0
        Weight of the box loss in the sum, >= 0.
    min_hard_negatives : int, default 0
        Negatives kept per image even without positives (for the default miner).
    miner : HybridBlock, default None
        ``miner(losses, samples) -> samples``; ``None`` builds
        ``HardNegativeMiner(negative_mining_ratio, min_hard_negatives)``.

    Inputs:
        - **cls_pred**: (B, N, C + 1) float32 logits, or a list of them, one
          per device.
        - **box_pred**: (B, N, 4) float32 (or a list).
        - **cls_target**: (B, N) float32, 0 background, 1..C, -1 ignore (or a list).
        - **box_target**: (B, N, 4) float32 (or a list).

    Outputs:
        - **sum_losses**: list of (B,) float32, one per device.
        - **cls_losses**: list of (B,) float32.
        - **box_losses**: list of (B,) float32.
    """

    def __init__(self, negative_mining_ratio=3, rho=1.0, lambd=1.0, min_hard_negatives=0,
                 miner=None, **kwargs):
        super(SSDMultiBoxLoss, self).__init__(**kwargs)
        with self.name_scope():
            self.loss = MultiBoxLoss(negative_mining_ratio, rho, lambd, min_hard_negatives,
                                     miner)

    def forward(self, cls_pred, box_pred, cls_target, box_target):
        parts = [_checks.as_list(x) for x in (cls_pred, box_pred, cls_target, box_target)]
        if len(set(len(part) for part in parts)) != 1:
            raise ValueError('cls_pred, box_pred, cls_target and box_target must be lists of '
                             'one length, got {}'.format([len(part) for part in parts]))
        return losses_over_devices(self.loss, parts)

    def __repr__(self):
        return '{}({!r})'.format(self.__class__.__name__, self.loss)


# ------------------------------------------------------------- Faster R-CNN head

class RCNNHardExampleLoss(_LossBlock):
    r"""Faster R-CNN head loss over the hardest RoIs only (OHEM inside the loss).

    Per RoI i, GluonCV's conventions (``train_faster_rcnn.py``): the softmax
    cross-entropy :math:`c_i = -\log p_{i, t_i}` and the smooth L1 of the
    4 box coordinates of its class, :math:`r_i = \sum_{k} m_{ik}
    \mathrm{smoothL1}_\rho(\hat b_{ik} - b_{ik})` (per-class ``box_pred``,
    ``box_target`` and ``box_mask`` as GluonCV's ``RCNNTargetGenerator``
    makes them). The miner (Shrivastava, Gupta and Girshick, CVPR 2016,
    Sec. 4) selects, among the labelled RoIs (``cls_target >= 0``: positives
    > 0, negatives 0), the set :math:`S_b` of each image b by these losses
    and the RoI boxes, and with :math:`|S|` counted over the B images

    .. math::

        L_{cls, b} = \frac{B}{\max(1, |S|)} \sum_{i \in S_b} c_i, \qquad
        L_{box, b} = \frac{B}{\max(1, |S|)} \sum_{i \in S_b} r_i, \qquad
        L_b = L_{cls, b} + \lambda L_{box, b}:

    the normalization of GluonCV's ``train_faster_rcnn.py`` and of Gluon
    losses, so that the mean over images (what ``trainer.step(batch_size)``
    applies) is the mean loss of a selected RoI. Gradients reach ``cls_pred`` and
    ``box_pred`` through the selected RoIs only; the miner sees stopped
    copies of the losses.

    This is OHEM inside the loss: the head has already run, with gradient, on
    every RoI given. The paper's scheme (a read-only pass over all RoIs, then
    forward and backward over the selected ones only) is
    :class:`gluonmine.rcnn_ohem.OHEMFasterRCNN`, which uses the same per-RoI
    losses.

    GluonCV's ``FasterRCNN`` training outputs keep box rows for the positives
    only, in the order of its 12th output ``indices``: pass that as
    ``box_indices`` and this loss applies to them directly, e.g.
    ``loss(cls_pred, box_pred, cls_targets, box_targets, box_masks, rois, indices)``.

    Parameters
    ----------
    miner : HybridBlock, default None
        ``miner(cls_losses, loc_losses, boxes, samples, labels) -> (indices,
        mask)`` as :class:`~gluonmine.ohem.HardExampleMiner`; ``None`` builds
        the paper's ``HardExampleMiner(64, 0.7, 'both', 1., lambd)``: 64 RoIs
        per image (128 per 2 images), NMS at 0.7, ranked by the loss trained.
    rho : float, default 1.0
        Smooth L1 transition point, at least :data:`RHO_MIN` (GluonCV's RCNN box
        loss uses 1).
    lambd : float, default 1.0
        Weight of the box loss, >= 0.

    Inputs:
        - **cls_pred**: (B, N, C + 1) float32 class logits, background first.
        - **box_pred**: (B, N, C, 4) float32 per-class box predictions, or
          (B, P, C, 4) with ``box_indices``.
        - **cls_target**: (B, N) float32, 0 background, 1..C a class, -1 ignore.
        - **box_target**: (B, N, C, 4) float32 encoded targets, like ``box_pred``.
        - **box_mask**: (B, N, C, 4) float32, 1 on the coordinates of a
          positive's class, else 0; like ``box_pred``.
        - **rois**: (B, N, 4) float32 corner boxes, for the miner's NMS.
        - **box_indices**: (B, P) optional, the RoI of each box row (distinct
          within an image); by default box row i is RoI i.

    Outputs:
        - **loss**: (B,) float32, ``cls_loss + lambd * box_loss``.
        - **cls_loss**: (B,) float32.
        - **box_loss**: (B,) float32.
        - **indices**: (B, K) float32, the miner's selected RoIs, -1 after the last.
        - **mask**: (B, N) float32, 1 where selected.
    """

    def __init__(self, miner=None, rho=1.0, lambd=1.0, **kwargs):
        super(RCNNHardExampleLoss, self).__init__(**kwargs)
        self._rho, self._lambd = check_smooth_l1_args(rho, lambd)
        with self.name_scope():
            self.miner = HardExampleMiner(64, 0.7, 'both', 1., self._lambd) if miner is None \
                else check_miner(miner)

    def check_inputs(self, cls_pred, box_pred, cls_target, box_target, box_mask, rois,
                     box_indices=None):
        _checks.check_shape('cls_pred', cls_pred, '(B, N, C)')
        _checks.check_shape('cls_target', cls_target, '(B, N)')
        _checks.check_shape('rois', rois, '(B, N, 4)', last=4)
        for name, x in [('cls_pred', cls_pred), ('rois', rois)]:
            _checks.check_same_leading(name, x, 'cls_target', cls_target)
        rows = 'box_indices' if box_indices is not None else 'cls_target'
        reference = box_indices if box_indices is not None else cls_target
        if box_indices is not None:
            _checks.check_shape('box_indices', box_indices, '(B, P)')
            _checks.check_same('box_indices', box_indices, 0, 'cls_target', cls_target, 0)
        for name, x in [('box_pred', box_pred), ('box_target', box_target),
                        ('box_mask', box_mask)]:
            _checks.check_shape(name, x, '(B, N, C, 4)', last=4)
            _checks.check_same_leading(name, x, rows, reference)
        return cls_pred, box_pred, cls_target, box_target, box_mask, rois, box_indices

    def hybrid_forward(self, F, cls_pred, box_pred, cls_target, box_target, box_mask, rois,
                       box_indices=None):
        cls, box = rcnn_losses(F, cls_pred, box_pred, cls_target, box_target, box_mask,
                               self._rho)                                   # (B, N), (B, P)
        box_per_roi = box if box_indices is None else _per_roi(F, box, box_indices, cls)
        indices, mask = self.miner(F.stop_gradient(cls), F.stop_gradient(box_per_roi),
                                   F.stop_gradient(rois), samples_from_targets(F, cls_target),
                                   cls_target)                              # (B, K), (B, N)
        norm = per_image_norm(F, mask)                                      # (1,)
        box_rows = mask if box_indices is None else _ops.gather_rows(F, mask, box_indices)
        cls_loss = normalized_sums(F, cls, mask, norm)                      # (B,)
        box_loss = normalized_sums(F, box, box_rows, norm)                  # (B,)
        return cls_loss + self._lambd * box_loss, cls_loss, box_loss, indices, mask

    def __repr__(self):
        return '{}(rho={}, lambd={}, miner={!r})'.format(
            self.__class__.__name__, self._rho, self._lambd, self.miner)


def _per_roi(F, box, box_indices, like):
    """Box losses of box rows put back at their RoIs, 0 elsewhere: (B, P) -> (B, N) like ``like``.

    Only the miner reads the result, so it is made from a stopped copy and
    never recorded.
    """
    with autograd.pause():
        return _ops.scatter_rows(F, F.stop_gradient(box), F.cast(box_indices, dtype='int64'),
                                 F.zeros_like(like))                        # (B, N)
