"""Online hard example mining: HardExampleMiner and GluonCV's OHEMSampler, batched.

Shape shorthand: B images, N candidates, M ground truths, C classes, K the
number of examples mined per image. samples: +1 positive, -1 negative,
0 ignore; mask: 1 selected, 0 not; indices: candidate index or -1.
"""
# pylint: disable=arguments-differ, invalid-name
from gluoncv.nn.sampler import OHEMSampler as _GluonCVOHEMSampler
from mxnet import gluon

from . import _checks, _nms, _ops
from ._block import SelectionBlock
from .hard_negative import negative_quota

LOSS_TYPES = ('cls', 'loc', 'both')
SCOPES = ('image', 'batch')


def _check_factor(name, value):
    """A finite number >= 0 (a weight or a ratio)."""
    return _checks.check_number(name, value, 0., float('inf'), high_open=True, float32=True)


class HardExampleMiner(SelectionBlock):
    """Select the hardest candidates by loss, with non-maximum suppression.

    Online hard example mining (Shrivastava, Gupta and Girshick, CVPR 2016,
    Sec. 4) with the constructor and rules of the TensorFlow Object Detection
    API's ``HardExampleMiner``. Per image:

    1. the ranking loss is ``cls_losses``, ``loc_losses``, or
       ``cls_loss_weight * cls_losses + loc_loss_weight * loc_losses``
       (``loss_type`` 'cls', 'loc', 'both');
    2. candidates are visited in descending ranking loss, equal losses lower
       index first, and greedy NMS keeps one unless its IoU with an already
       kept candidate is ``> iou_threshold`` (no NMS when ``None``; the paper
       uses 0.7 so that overlapping RoIs do not count twice), stopping after
       ``num_hard_examples`` keeps (no limit when ``None``);
    3. with ``max_negatives_per_positive``, every kept positive stays and the
       kept negatives are cut, in loss order, to ``max(min_negatives_per_image,
       floor(max_negatives_per_positive * num_positives))``, where
       ``num_positives`` counts the kept positives (float32 product, as TF).

    Never selected: ignored candidates (``samples == 0``) and candidates with a
    NaN or infinite ``cls_losses``, ``loc_losses``, ranking loss, box
    coordinate or label (selecting one would make the mined loss NaN or
    infinite; NMS could not compare it). They take no part in NMS either, so
    they never suppress or crowd out a real candidate. An image without
    selectable candidates gets none.

    Two options reproduce the reference Caffe OHEM (abhi2610/ohem,
    ``get_ohem_minibatch``): ``nms_by_label=True`` suppresses a candidate only
    by a kept candidate of the same label (input ``labels``), and
    ``scope='batch'`` counts ``num_hard_examples`` over all B images together
    (NMS stays per image; equal losses: lower image, then lower index first;
    ``max_negatives_per_positive`` still applies per image, to its selection).

    Reproducing the references: the Caffe OHEM (2 images, 128 RoIs, the
    summed per-RoI loss) is ``HardExampleMiner(128, 0.7, 'both', 1., 1.,
    nms_by_label=True, scope='batch')``; TF's Faster R-CNN configurations are
    the defaults (64 per image); SSD-style mining (all negatives ranked, 3 per
    positive, no NMS) is ``HardExampleMiner(None, None, 'cls',
    max_negatives_per_positive=3)``.

    Speed: NMS runs in MXNet's ``contrib.box_nms`` over the hardest
    ``_nms.NMS_PREFIX * num_hard_examples`` (2x) candidates of each image,
    and over all of them only in images where that prefix keeps too few (the
    result is exact either way). Without a limit it visits every candidate, O(N^2).

    Parameters
    ----------
    num_hard_examples : int or None, default 64
        Candidates selected per image (per batch with ``scope='batch'``);
        ``None`` for no limit.
    iou_threshold : float or None, default 0.7
        NMS suppresses IoU above this, in [0, 1]; ``None`` disables NMS.
    loss_type : str, default 'both'
        Ranking loss: 'cls', 'loc' or 'both' (weighted sum).
    cls_loss_weight : float, default 0.05
        Weight of ``cls_losses`` in the 'both' ranking loss, >= 0.
    loc_loss_weight : float, default 0.06
        Weight of ``loc_losses`` in the 'both' ranking loss, >= 0.
    max_negatives_per_positive : float or None, default None
        Cap on kept negatives per kept positive, >= 0; ``None``: no cap.
    min_negatives_per_image : int, default 0
        Negatives the cap allows even without positives.
    nms_by_label : bool, default False
        Suppress only by a kept candidate of the same label; needs ``labels``
        and an ``iou_threshold``.
    scope : str, default 'image'
        'image': ``num_hard_examples`` per image; 'batch': over the batch.

    Inputs:
        - **cls_losses**: (B, N) float32 per-candidate classification loss.
        - **loc_losses**: (B, N) float32 per-candidate box regression loss.
        - **boxes**: (B, N, 4) float32 corner boxes (x1, y1, x2, y2) for NMS.
        - **samples**: (B, N) float32, +1 positive, -1 negative, 0 ignore
          (never selected).
        - **labels**: (B, N) float32 integer class ids; only with
          ``nms_by_label=True``, and then required.

    Outputs:
        - **indices**: (B, K) float32, K = ``num_hard_examples`` (N when
          ``None``): the selected candidates of each image in descending
          ranking loss, -1 after the last (exact integers below 2**24).
        - **mask**: (B, N) float32, 1 where selected, else 0.
    """

    def __init__(self, num_hard_examples=64, iou_threshold=0.7, loss_type='both',
                 cls_loss_weight=0.05, loc_loss_weight=0.06, max_negatives_per_positive=None,
                 min_negatives_per_image=0, nms_by_label=False, scope='image', **kwargs):
        super(HardExampleMiner, self).__init__(**kwargs)
        self._k = None if num_hard_examples is None else _checks.check_int(
            'num_hard_examples', num_hard_examples, low=1)
        self._iou = None if iou_threshold is None else _checks.check_number(
            'iou_threshold', iou_threshold, 0., 1., float32=True)
        self._loss_type = _checks.check_choice('loss_type', loss_type, LOSS_TYPES)
        self._weights = (_check_factor('cls_loss_weight', cls_loss_weight),
                         _check_factor('loc_loss_weight', loc_loss_weight))
        self._neg_ratio = None if max_negatives_per_positive is None else _check_factor(
            'max_negatives_per_positive', max_negatives_per_positive)
        self._min_neg = _checks.check_int('min_negatives_per_image', min_negatives_per_image)
        self._count_over = _checks.check_choice('scope', scope, SCOPES)
        self._by_label = bool(_checks.check_choice('nms_by_label', nms_by_label, (False, True)))
        if self._by_label and self._iou is None:
            raise ValueError('nms_by_label=True needs an iou_threshold, got None')

    def check_inputs(self, cls_losses, loc_losses, boxes, samples, labels=None):
        _checks.check_shape('cls_losses', cls_losses, '(B, N)')
        _checks.check_shape('loc_losses', loc_losses, '(B, N)')
        _checks.check_shape('boxes', boxes, '(B, N, 4)', last=4)
        _checks.check_shape('samples', samples, '(B, N)')
        for name, x in [('cls_losses', cls_losses), ('loc_losses', loc_losses), ('boxes', boxes)]:
            _checks.check_same_leading(name, x, 'samples', samples)
        if not self._by_label:
            return cls_losses, loc_losses, boxes, samples
        if labels is None:
            raise ValueError('labels (B, N) is required with nms_by_label=True')
        _checks.check_shape('labels', labels, '(B, N)')
        _checks.check_same_leading('labels', labels, 'samples', samples)
        return cls_losses, loc_losses, boxes, samples, labels

    def hybrid_forward(self, F, cls_losses, loc_losses, boxes, samples, labels=None):
        loss = self._ranking_loss(F, cls_losses, loc_losses)                # (B, N)
        usable = self._usable(F, samples, [cls_losses, loc_losses, loss], boxes, labels)
        scores = _ops.mask_invalid(F, loss, usable)                         # (B, N)
        index, loss, sample = self._hardest(F, scores, boxes, samples, labels)  # (B, K) each
        over_batch = self._count_over == 'batch' and self._k is not None
        if over_batch or self._neg_ratio is not None:
            taken = index >= 0                                              # (B, K)
            if over_batch:
                taken = self._batch_hardest(F, loss, taken)                 # (B, K)
            if self._neg_ratio is not None:
                taken = self._cap_negatives(F, sample, taken)               # (B, K)
            index = _ops.compact(F, index, taken)                           # (B, K)
        return index, _ops.index_mask(F, index, samples)                    # (B, K), (B, N)

    def _ranking_loss(self, F, cls_losses, loc_losses):
        """The loss that ranks candidates: (B, N) x 2 -> (B, N)."""
        if self._loss_type == 'cls':
            return cls_losses
        if self._loss_type == 'loc':
            return loc_losses
        return cls_losses * self._weights[0] + loc_losses * self._weights[1]

    @staticmethod
    def _usable(F, samples, losses, boxes, labels):
        """Selectable candidates: labelled, finite losses, box and label. -> (B, N)."""
        usable = (samples != 0) * _ops.finite_rows(F, boxes)                # (B, N)
        for x in losses + ([] if labels is None else [labels]):
            usable = usable * _ops.finite(F, x)                             # (B, N)
        return usable

    def _hardest(self, F, scores, boxes, samples, labels):
        """Greedy NMS (or a plain sort) in descending score: [index, score, sample] (B, K)."""
        if self._iou is not None:
            return _nms.greedy_nms(F, scores, boxes, self._iou, self._k, carry=[samples],
                                   labels=labels)
        index = _ops.stable_order(F, scores, scores > -_ops.INF, self._k)   # (B, K)
        return [index] + [_ops.gather_rows(F, x, index, fill=-1) for x in (scores, samples)]

    def _batch_hardest(self, F, loss, taken):
        """Keep the hardest ``num_hard_examples`` over the batch: (B, K) -> (B, K).

        Rows are laid end to end, so equal losses rank the lower image first
        and, within an image, keep their NMS order (lower index first).
        """
        flat = F.reshape(loss, shape=(1, -1))                               # (1, B * K)
        chosen, _ = _ops.rank_mask(F, flat, F.reshape(taken, shape=(1, -1)), self._k)
        return F.reshape_like(chosen, taken)                                # (B, K)

    def _cap_negatives(self, F, sample, taken):
        """All taken positives and at most the capped number of taken negatives, in order."""
        positive = taken * (sample > 0)                                     # (B, K)
        negative = taken * (sample < 0)                                     # (B, K)
        quota = negative_quota(F, positive, self._neg_ratio, self._min_neg)  # (B, 1)
        within = F.broadcast_lesser_equal(F.cumsum(negative, axis=1), quota)  # (B, K)
        return positive + negative * within                                 # (B, K)

    def __repr__(self):
        return ('{}(num_hard_examples={}, iou_threshold={}, loss_type={!r}, cls_loss_weight={}, '
                'loc_loss_weight={}, max_negatives_per_positive={}, min_negatives_per_image={}, '
                'nms_by_label={}, scope={!r})').format(
                    self.__class__.__name__, self._k, self._iou, self._loss_type,
                    self._weights[0], self._weights[1], self._neg_ratio, self._min_neg,
                    self._by_label, self._count_over)


class _GluonCVOHEMBase(_GluonCVOHEMSampler):
    """GluonCV's ``OHEMSampler`` as a base class only, for ``isinstance``.

    Gluon refuses to replace a child block by one of another type
    (``Block.__setattr__``), so gluonmine's sampler can take the place of
    ``SSDTargetGenerator._sampler`` only as an instance of GluonCV's class.
    This base skips GluonCV's constructor (other arguments, and an ``assert``);
    its ``forward`` never runs: ``HybridBlock.forward`` comes first in the MRO.
    """

    # pylint: disable=super-init-not-called, non-parent-init-called
    def __init__(self, prefix=None, params=None):
        gluon.Block.__init__(self, prefix=prefix, params=params)


class OHEMSampler(SelectionBlock, _GluonCVOHEMBase):
    """Hard negative mining for SSD targets: a drop-in for GluonCV's ``OHEMSampler``.

    Same constructor, call and output as ``gluoncv.nn.sampler.OHEMSampler``
    (what ``SSDTargetGenerator`` uses with ``negative_mining_ratio > 0``), as a
    HybridBlock with no host round trip, batched. Per image:

    - positives are the candidates with ``x >= 0`` (a matched ground truth);
    - eligible negatives have ``x < 0`` and IoU ``< thresh`` with every ground
      truth (pairs with NaN IoU are ignored);
    - the ``quota = floor(max(min_samples, ratio * num_positives))`` eligible
      negatives of highest classification loss ``-log p_background`` become
      -1, the others 0. The loss is ranked through the background
      probability of MXNet's softmax, as GluonCV ranks it (max-shifted, so it
      cannot overflow; a float32 probability orders candidates as the
      cross-entropy does until it underflows to 0, at a background logit
      about 87 below the top one: such candidates, the hardest of all, tie);
      equal scores rank the lower index first (GluonCV's order is
      unspecified there); a NaN score is never selected.

    Shrivastava, Gupta and Girshick, CVPR 2016; as used by SSD (Liu et al.,
    ECCV 2016, Sec. 2.2, "Hard negative mining", ratio 3).

    The one deliberate difference from GluonCV: when fewer negatives are
    eligible than the quota, GluonCV fills the quota with positives or
    ineligible candidates relabelled -1; this sampler selects every eligible
    negative and never touches a positive. The output is identical otherwise.

    Speed: the quota is cut with one top-k of ``_ops.FAST_K`` (256)
    per image; images with a larger quota take their cut from a full sort.

    Parameters
    ----------
    ratio : float
        Negatives per positive, > 0 (SSD uses 3).
    min_samples : int, default 0
        Negatives selected even in an image without positives, >= 0.
    thresh : float, default 0.5
        Negatives must have IoU below this with every ground truth
        (``float('inf')``: any IoU).

    Inputs:
        - **x**: (B, N) float32 matches: index of the matched ground truth
          (>= 0) or -1, integer-valued, as GluonCV's SSD matcher gives them
          (not the ``matches`` of gluonmine's samplers, 0 where none: with
          those every candidate would count as positive).
        - **logits**: (B, N, C) float32 class scores, background first.
        - **ious**: (B, N, M) float32 IoU of each candidate with each ground
          truth, or (B, N) the best IoU of each candidate.

    Outputs:
        - **samples**: (B, N) float32, +1 positive, -1 selected negative,
          0 otherwise.
    """

    def __init__(self, ratio, min_samples=0, thresh=0.5, **kwargs):
        super(OHEMSampler, self).__init__(**kwargs)
        self._ratio = _checks.check_number('ratio', ratio, 0., float('inf'), low_open=True,
                                           high_open=True, float32=True)
        self._min_samples = _check_factor('min_samples', min_samples)
        self._thresh = _checks.check_number('thresh', thresh, float32=True)

    def check_inputs(self, x, logits, ious):
        _checks.check_shape('x', x, '(B, N)')
        _checks.check_shape('logits', logits, '(B, N, C)')
        if _checks.is_array(ious) and ious.ndim == 2:
            ious = ious.expand_dims(axis=2)                                 # (B, N, 1)
        _checks.check_shape('ious', ious, '(B, N, M)')
        for name, other in [('logits', logits), ('ious', ious)]:
            _checks.check_same_leading(name, other, 'x', x)
        return x, logits, _checks.padding_if_empty(ious, axis=2, value=0.)

    def hybrid_forward(self, F, x, logits, ious):
        # (B, N) -> (B, N, 1); a Symbol input (inside another block) is not expanded by
        # check_inputs, whose ndim test needs an NDArray
        ious = F.reshape(ious, shape=(0, 0, -1))                            # (B, N, M)
        positive = x >= 0                                                   # (B, N)
        near = _ops.row_any(F, _ops.at_least(F, ious, self._thresh))        # (B, N)
        background = F.slice_axis(F.softmax(logits, axis=-1), axis=2, begin=0, end=1)
        background = F.reshape(background, shape=(0, 0))                    # (B, N)
        eligible = (x < 0) > near                                           # (B, N)
        hardness = _ops.mask_invalid(F, -background, eligible)              # NaN: never
        quota = negative_quota(F, positive, self._ratio, self._min_samples)  # (B, 1)
        return positive - _ops.count_mask(F, hardness, quota)               # (B, N)

    def __repr__(self):
        return '{}(ratio={}, min_samples={}, thresh={})'.format(
            self.__class__.__name__, self._ratio, self._min_samples, self._thresh)
