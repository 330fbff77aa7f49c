"""RPN stage: RPNTargetSampler and the batched, on-device RPNTargetGenerator.

Shape shorthand: B images, N anchors, M ground truths, K = the positive quota.
samples: +1 positive, -1 negative, 0 ignore; cls_target: +1 positive,
0 negative, -1 ignore (GluonCV's RPN convention).
"""
# pylint: disable=arguments-differ, invalid-name
from mxnet import ndarray, symbol

from . import _checks, _ops, boxes, labeling
from ._block import SelectionBlock
from .quota import _QuotaSamplerBase, check_quota_args


class RPNTargetSampler(_QuotaSamplerBase):
    """Sample anchors for the RPN: IoU bands, forced best anchors, quotas.

    For each image, with ``best`` an anchor's largest usable IoU (pairs with
    IoU < 0 or NaN are unusable; an anchor without usable pairs is always
    ignored): negative when ``0 <= best < neg_iou_thresh``, positive when
    ``best >= pos_iou_thresh``. Every ground truth whose best IoU ``g`` over
    anchors exceeds ``min_forced_iou`` also makes positive each anchor with
    IoU >= g - eps (eps = float32 spacing at 1.0, ties included), so every
    object gets an anchor (Faster R-CNN, Ren et al. 2015, Sec. 3.1.2); padding
    ground truths and ones that overlap nothing force nothing. Such forced
    positives stay positive below ``neg_iou_thresh`` unless
    ``clobber_positives``, which applies the negative rule last.

    Then a uniformly random ``min(num_pos, max_pos)`` positives are kept, with
    ``max_pos = round(num_sample * pos_ratio)``, and a uniformly random
    ``min(num_neg, num_sample - min(num_pos, max_pos))`` negatives
    (``num_sample - max_pos`` without ``fill_negative``). Counts are exact;
    draws come from ``mx.random`` (seed with ``mx.random.seed``).

    ``RPNTargetSampler(clobber_positives=True)`` labels exactly as GluonCV
    0.10's ``gluoncv.model_zoo.rcnn.rpn.rpn_target.RPNTargetSampler`` wherever
    every ground truth has a positive best IoU, batched and on device.

    Parameters
    ----------
    num_sample : int, default 256
        Anchors sampled per image.
    pos_iou_thresh : float, default 0.7
        Smallest IoU of a positive anchor.
    neg_iou_thresh : float, default 0.3
        Negatives have IoU below this; must be <= ``pos_iou_thresh``.
    pos_ratio : float, default 0.5
        Fraction of ``num_sample`` that positives may take.
    clobber_positives : bool, default False
        Apply the negative rule after the forced positives (GluonCV 0.10).
    min_forced_iou : float, default 0.0
        A ground truth forces its best anchors only when their IoU exceeds this.
    fill_negative : bool, default True
        Whether negatives fill the slots that missing positives leave.

    Inputs:
        - **ious**: (B, N, M) float32 IoU of each anchor with each ground truth;
          negative or NaN marks a pair that must not be used.

    Outputs:
        - **samples**: (B, N) float32, +1 positive, -1 negative, 0 ignore.
        - **matches**: (B, N) float32, argmax ground truth over usable columns
          (lowest index on ties, 0 where none is usable).
    """

    def __init__(self, num_sample=256, pos_iou_thresh=0.7, neg_iou_thresh=0.3, pos_ratio=0.5,
                 clobber_positives=False, min_forced_iou=0.0, fill_negative=True, **kwargs):
        num_sample, pos_ratio = check_quota_args(num_sample, pos_ratio)
        pos = _checks.check_number('pos_iou_thresh', pos_iou_thresh, 0., 1., low_open=True,
                                     float32=True)
        neg = _checks.check_number('neg_iou_thresh', neg_iou_thresh, 0., 1., float32=True)
        _checks.check_order('neg_iou_thresh', neg, 'pos_iou_thresh', pos)
        forced = _checks.check_number('min_forced_iou', min_forced_iou, 0., 1., high_open=True,
                                        float32=True)
        super(RPNTargetSampler, self).__init__(
            num_sample, pos, 0., neg, pos_ratio, fill_negative, force_positives=True,
            min_forced_iou=forced, clobber_positives=clobber_positives, **kwargs)


def _joined_levels(levels):
    """Per-level anchors (NDArrays or Symbols, see :func:`boxes.join_levels`) as one input,
    float32; NDArray levels are checked first, by the name ``anchors``."""
    if not levels:
        raise ValueError('anchors is an empty list: give (N, 4), (B, N, 4), or one such '
                         'array per feature level')
    arrays = all(_checks.is_array(level) for level in levels)
    if arrays:
        for level in levels:
            _checks.check_shape('anchors (a level)', level,
                                '(N, 4)' if level.ndim == 2 else '(B, N, 4)', last=4)
        if len({level.shape[:-2] for level in levels}) > 1:
            raise ValueError('anchors: the levels have shapes {}; all must be (N_l, 4), or all '
                             '(B, N_l, 4) with the same B'.format(
                                 [level.shape for level in levels]))
    return _checks.as_float32(boxes.join_levels(ndarray if arrays else symbol, list(levels)))


class RPNTargetGenerator(SelectionBlock):
    """RPN training targets for a batch, made on the training device.

    The batched form of GluonCV's ``RPNTargetGenerator``: IoU of every anchor
    with every ground truth of its image, the image-border rule (anchors outside
    the image, widened by ``allowed_border``, are ignored), sampling, and box
    encoding, for all B images in one graph. The DataLoader can then ship
    images and padded boxes only. For the same samples, ``box_target`` and
    ``box_mask`` equal GluonCV's; ``cls_target`` uses GluonCV's +1/0/-1.

    Anchors shared by the batch, (N, 4), take a fused ``contrib.box_iou`` path;
    per-image anchors, (B, N, 4), a broadcast one. A hybridized generator keeps
    one graph per anchor layout: calling it with the other layout rebuilds it.
    Inside another hybridized block the anchors are a Symbol whose layout
    cannot be read, so the generator takes the broadcast path, which serves
    (N, 4), (1, N, 4) (GluonCV's ``FasterRCNN`` output) and (B, N, 4) alike.

    Parameters
    ----------
    num_sample : int, default 256
        Anchors sampled per image.
    pos_iou_thresh : float, default 0.7
        Smallest IoU of a positive anchor.
    neg_iou_thresh : float, default 0.3
        Negatives have IoU below this.
    pos_ratio : float, default 0.5
        Fraction of ``num_sample`` that positives may take.
    stds : tuple of 4 float, default (1., 1., 1., 1.)
        Divisors of the encoded box targets (GluonCV's ``box_norm``), > 0 and finite
        in float32.
    allowed_border : float, default 0
        Pixels an anchor may reach beyond the image; ``float('inf')`` keeps all.
    sampler : RPNTargetSampler or QuotaSampler, default None
        The sampler to use; ``None`` builds ``RPNTargetSampler(num_sample,
        pos_iou_thresh, neg_iou_thresh, pos_ratio)``. When given, those four
        arguments are not used.

    Inputs:
        - **gt_boxes**: (B, M, 4) corner boxes, padding rows -1.
        - **anchors**: (N, 4) corner anchors shared by the batch, or (B, N, 4); or a
          list of such arrays, one a feature level (GluonCV's FPN ``FasterRCNN``
          output), joined in order along N.
        - **im_hw**: (B, 2) height and width of each image (before padding).

    Outputs:
        - **cls_target**: (B, N) float32, +1 positive, 0 negative, -1 ignore.
        - **box_target**: (B, N, 4) float32, encoded targets of positives, 0 elsewhere.
        - **box_mask**: (B, N, 4) float32, 1 for positives, 0 elsewhere.
    """

    def __init__(self, num_sample=256, pos_iou_thresh=0.7, neg_iou_thresh=0.3, pos_ratio=0.5,
                 stds=(1., 1., 1., 1.), allowed_border=0, sampler=None, **kwargs):
        super(RPNTargetGenerator, self).__init__(**kwargs)
        if sampler is None:
            sampler = RPNTargetSampler(num_sample, pos_iou_thresh, neg_iou_thresh, pos_ratio)
        elif not isinstance(sampler, _QuotaSamplerBase):
            raise ValueError('sampler must be a gluonmine RPNTargetSampler or QuotaSampler, '
                             'got {!r}'.format(sampler))
        if len(tuple(stds)) != 4:
            raise ValueError('stds must hold 4 numbers, got {!r}'.format(stds))
        self._stds = tuple(_checks.check_number('stds', s, 0., float('inf'), low_open=True,
                                                high_open=True, float32=True) for s in stds)
        self._allowed_border = _checks.check_number('allowed_border', allowed_border,
                                                    float32=True)
        self._shared = True
        with self.name_scope():
            self.sampler = sampler

    def check_inputs(self, gt_boxes, anchors, im_hw):  # pylint: disable=arguments-differ
        if isinstance(anchors, (list, tuple)):          # one array a level (GluonCV's FPN)
            anchors = _joined_levels(anchors)
        _checks.check_shape('gt_boxes', gt_boxes, '(B, M, 4)', last=4)
        _checks.check_shape('im_hw', im_hw, '(B, 2)', last=2)
        _checks.check_same('gt_boxes', gt_boxes, 0, 'im_hw', im_hw, 0)
        shared = None                       # a Symbol (inside another block): unknown
        if _checks.is_array(anchors):
            if anchors.ndim == 3 and anchors.shape[0] == 1:
                anchors = anchors.reshape((-1, 4))
            _checks.check_shape('anchors', anchors,
                                '(N, 4)' if anchors.ndim == 2 else '(B, N, 4)', last=4)
            if anchors.ndim == 3:
                _checks.check_same('anchors', anchors, 0, 'gt_boxes', gt_boxes, 0)
            shared = anchors.ndim == 2
        if shared != self._shared:
            self._shared = shared
            self._clear_cached_op()
        return _checks.padding_if_empty(gt_boxes), anchors, im_hw

    def hybrid_forward(self, F, gt_boxes, anchors, im_hw):
        shared = self._shared
        if shared is None:                  # layout unknown: the per-image path serves all
            anchors, shared = boxes.per_image_boxes(F, anchors, gt_boxes), False  # (B, N, 4)
        ious = boxes.pairwise_iou(F, anchors, gt_boxes, shared)             # (N, B, M)
        inside = F.transpose(boxes.inside_image(
            F, anchors, im_hw, self._allowed_border, shared))               # (N, B)
        positive = self._positives(F, ious, inside)                         # (N, B)
        samples = self.sampler.label(F, ious, usable=inside, positive=positive)  # (N, B)
        samples = self.sampler.subsample(F, F.transpose(samples))           # (B, N)
        cls_target = (samples > 0) - (samples == 0)                         # (B, N)
        box_target, box_mask = self._encode_positives(F, samples, ious, gt_boxes, anchors,
                                                       shared)
        return cls_target, box_target, box_mask

    def _positives(self, F, ious, inside):
        """The sampler's positives among anchors inside the image, on anchor-major IoU.

        The rule of :func:`gluonmine.labeling.positive_cut`, with each ground
        truth's best IoU taken over anchors inside the image only.
        ious (N, B, M), inside (N, B) -> (N, B).
        """
        args = self.sampler.label_args
        if args['force_positives']:
            cap = F.where(inside, _ops.full_like(F, inside, _ops.INF),
                          -F.ones_like(inside))                             # (N, B)
            best = _ops.first_axis_max(F, F.broadcast_minimum(
                ious, F.expand_dims(cap, axis=-1)))                         # (B, M)
            cut = labeling.positive_cut(F, best, args['pos_iou_thresh'],
                                        args['min_forced_iou'])             # (B, M)
            hits = F.broadcast_greater_equal(F.reshape(ious, shape=(0, -1)),
                                             F.reshape(cut, shape=(1, -1))) # (N, B * M)
            hits = F.reshape_like(hits, ious)                               # (N, B, M)
        else:
            hits = ious >= args['pos_iou_thresh']                           # (N, B, M)
        return _ops.row_any(F, hits) * inside                               # (N, B)

    def _encode_positives(self, F, samples, ious, gt_boxes, anchors, shared):
        """Box targets of the sampled positives only (at most K = max_pos an image).

        Matching and encoding run on the (B, K) positives, gathered by a top-k,
        instead of all N anchors; the codes are scattered back.
        samples: (B, N), ious: (N, B, M), anchors: (N, 4) if ``shared`` else
        (B, N, 4) -> box_target, box_mask (B, N, 4) each.
        """
        box_mask = _ops.spread(F, samples > 0, 4)                           # (B, N, 4)
        k = self.sampler.max_pos
        if k == 0:
            return F.zeros_like(box_mask), box_mask
        index, take = _ops.top_entries(F, samples, samples > 0, k)          # (B, K) each
        rows = _ops.gather_rows(F, ious, index, image_axis=1)               # (B, K, M)
        matches = F.argmax(rows, axis=-1)                                   # (B, K) first maximum
        gt = _ops.gather_rows(F, gt_boxes, matches)                         # (B, K, 4)
        if shared:
            mine = F.take(anchors, index, axis=0, mode='clip')              # (B, K, 4)
        else:
            mine = _ops.gather_rows(F, anchors, index)                      # (B, K, 4)
        codes = boxes.encode(F, mine, gt, self._stds)                       # (B, K, 4)
        box_target = _ops.scatter_top(F, codes, index, take, box_mask, 4)   # (B, N, 4)
        return box_target, box_mask
