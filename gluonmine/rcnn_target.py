"""RCNN stage: RCNNTargetSampler, a batched drop-in for GluonCV's.

Shape shorthand: B images, N proposals, M ground truths, C = N + M candidates
(the proposals, then the ground truths appended), K = num_sample output slots,
P = max_pos. samples: +1 positive, -1 negative, 0 ignore; matches: index in [0, M).
"""
# pylint: disable=arguments-differ, invalid-name
from gluoncv.model_zoo.rcnn.faster_rcnn import rcnn_target as _gluoncv

from . import _checks, _ops, boxes, labeling, sampling
from ._block import SelectionBlock
from .quota import check_band_args, check_quota_args


def _column(F, x, value):
    """A (B, L) array of ``value`` for x of shape (B, L, 4)."""
    return F.reshape(F.ones_like(F.slice_axis(x, axis=-1, begin=0, end=1)), shape=(0, -1)) * value


class RCNNTargetSampler(sampling.QuotaProperties, SelectionBlock, _gluoncv.RCNNTargetSampler):
    """Sample RoIs for the RCNN head, batched: drop-in for GluonCV's sampler.

    The Fast R-CNN rule (Girshick, 2015, Sec. 2.3) on the proposals with the
    ground truths appended (Faster R-CNN's training recipe): with ``best`` a
    candidate's largest IoU with the image's ground truths, a candidate is
    positive when ``best >= pos_iou_thresh`` and negative when
    ``neg_iou_thresh_low <= best < neg_iou_thresh_high``. Proposals with score
    < 0 (GluonCV's RPN padding) are never sampled; appended ground truths are
    sampled as positives only, so padding rows (and boxes of zero area) never
    are; a box with a NaN or infinite coordinate counts as padding. Then, per
    image, a uniformly random ``min(num_pos, max_pos)`` positives, ``max_pos =
    round(num_sample * pos_ratio)``, and a uniformly random ``min(num_neg,
    num_sample - positives taken)`` negatives. Each candidate fills at most
    one slot; slots left over get label 0 (no loss), matches 0 and the box
    (-1, -1, -1, -1), which GluonCV's RoI pooling treats as padding. An image
    without ground truths gets negatives only.

    Output slots hold the positives first, then the negatives, then the empty
    slots, each group in random order. GluonCV sorts its slots by RoI area;
    nothing downstream depends on the order: ``FasterRCNN`` pools the slots as
    they come and its target generator finds the positives by sorting
    ``samples``, keeping the first ``max_pos``, which is all of them here.

    Differences from GluonCV 0.10, each deliberate: GluonCV may return a
    candidate twice (it fills the negative quota from a shuffled list that
    still holds the positives it took), returns more than ``max_pos``
    positives when negatives run short, and has no lower bound for negatives.
    Like GluonCV, it gives every sampled candidate, negatives included, the
    index of its best ground truth as ``matches``. Draws come from
    ``mx.random`` (seed with ``mx.random.seed``). Labelling and sampling run
    on the whole batch at once; only the IoU is one fused ``box_iou`` an image
    (:func:`gluonmine.boxes.per_image_iou` says why).

    The class derives from GluonCV's sampler, so Gluon accepts it in place of
    GluonCV's child block (``net.sampler = RCNNTargetSampler(...)``) and keeps
    the attributes GluonCV code reads (``_max_pos``), and from gluonmine's
    ``SelectionBlock``, which checks the inputs and pauses autograd.

    Parameters
    ----------
    num_image : int
        Images a batch (GluonCV's ``per_device_batch_size``): the batch size
        of the graph; a call with another one rebuilds it.
    num_proposal : int
        Proposals an image; kept for GluonCV's constructor: any number works.
    num_sample : int
        Output slots an image.
    pos_iou_thresh : float
        Smallest IoU of a positive.
    pos_ratio : float
        Fraction of ``num_sample`` that positives may take.
    max_num_gt : int
        GluonCV's bound on ground truths an image; kept for its constructor:
        any number of ground truth rows works.
    neg_iou_thresh_high : float, default None
        Negatives have IoU below this; ``None`` means ``pos_iou_thresh``
        (GluonCV's rule). Must be <= ``pos_iou_thresh``.
    neg_iou_thresh_low : float, default 0.0
        Negatives have IoU at least this (Fast R-CNN's ``bg_lo``, 0.1 there).

    Inputs:
        - **rois**: (B, N, 4) float32 proposals, corner format.
        - **scores**: (B, N, 1) or (B, N) float32 proposal scores; < 0 marks
          a padding proposal.
        - **gt_boxes**: (B, M, 4) float32 ground truths, padding rows -1.

    Outputs:
        - **rois**: (B, num_sample, 4) float32 sampled boxes; (-1, -1, -1, -1)
          in empty slots.
        - **samples**: (B, num_sample) float32, +1 positive, -1 negative,
          0 empty slot.
        - **matches**: (B, num_sample) float32: for every sampled candidate,
          the index in [0, M) of the ground truth of largest IoU (lowest index
          on ties; GluonCV reads it for positives only); 0 in empty slots.
    """

    def __init__(self, num_image, num_proposal, num_sample, pos_iou_thresh, pos_ratio,
                 max_num_gt, neg_iou_thresh_high=None, neg_iou_thresh_low=0.0):
        num_image = _checks.check_int('num_image', num_image, low=1)
        num_proposal = _checks.check_int('num_proposal', num_proposal, low=1)
        num_sample, pos_ratio = check_quota_args(num_sample, pos_ratio)
        max_num_gt = _checks.check_int('max_num_gt', max_num_gt, low=1)
        pos, high, low = check_band_args(
            pos_iou_thresh, pos_iou_thresh if neg_iou_thresh_high is None else neg_iou_thresh_high,
            neg_iou_thresh_low)
        # GluonCV's initializer sets the attributes GluonCV code reads (FasterRCNN
        # reads _max_pos); it takes no prefix/params, and this block has no parameters.
        _gluoncv.RCNNTargetSampler.__init__(self, num_image, num_proposal, num_sample, pos,
                                            pos_ratio, max_num_gt)
        self._neg_iou_thresh_high = high
        self._neg_iou_thresh_low = low
        self._batch = num_image         # B of the graph: the IoU step is one op an image

    def check_inputs(self, rois, scores, gt_boxes):
        _checks.check_shape('rois', rois, '(B, N, 4)', last=4)
        if _checks.is_array(scores) and not (scores.ndim == 2 or (
                scores.ndim == 3 and scores.shape[-1] == 1)):
            raise ValueError('scores must have shape (B, N, 1) or (B, N), got {}'.format(
                scores.shape))
        _checks.check_shape('gt_boxes', gt_boxes, '(B, M, 4)', last=4)
        _checks.check_same_leading('scores', scores, 'rois', rois)
        _checks.check_same('gt_boxes', gt_boxes, 0, 'rois', rois, 0)
        if _checks.is_array(rois) and rois.shape[0] != self._batch:
            self._batch = rois.shape[0]
            self._clear_cached_op()
        return rois, scores, _checks.padding_if_empty(gt_boxes)

    def hybrid_forward(self, F, rois, scores, gt_boxes):
        # boxes with NaN or infinite coordinates are padding: never sampled, never matched
        scores = F.reshape(scores, shape=(0, -1))                           # (B, N)
        scores = F.where(_ops.finite_rows(F, rois), scores, -F.ones_like(scores))  # (B, N)
        gt_boxes = F.where(_ops.spread(F, _ops.finite_rows(F, gt_boxes), 4), gt_boxes,
                           -F.ones_like(gt_boxes))                          # (B, M, 4)
        candidates = F.concat(rois, gt_boxes, dim=1)                        # (B, C, 4)
        ious = boxes.per_image_iou(F, candidates, gt_boxes, self._batch)    # (B, C, M)
        labels = self.label_candidates(F, ious, scores, gt_boxes)           # (B, C)
        index, take = self._select(F, labels)                               # (B, K) each
        samples = _ops.gather_rows(F, labels, index) * take                 # (B, K)
        # box_iou never gives NaN or negatives: the first maximum is the match
        matches = F.argmax(_ops.gather_rows(F, ious, index), axis=-1) * take  # (B, K)
        picked = _ops.gather_rows(F, candidates, index)                     # (B, K, 4)
        picked = F.where(_ops.spread(F, take, 4), picked, -F.ones_like(picked))  # (B, K, 4)
        return F.stop_gradient(picked), F.stop_gradient(samples), F.stop_gradient(matches)

    def label_candidates(self, F, ious, scores, gt_boxes):
        """Labels of all candidates before sampling: ious (B, C, M) -> (B, C).

        The proposals (B, N) with the ground truths (B, M) appended: a live
        proposal (score >= 0) may be positive or negative, a padding proposal
        neither; an appended ground truth only positive, which it is when it is
        a real box (IoU 1 with itself), so padding rows get 0.
        """
        live = F.reshape(scores, shape=(0, -1)) >= 0                        # (B, N)
        # 2: live proposal, 1: ground truth, 0: padding proposal
        kind = F.concat(2 * live, _column(F, gt_boxes, 1.), dim=1)          # (B, C)
        labels = labeling.label(F, ious, self._pos_iou_thresh, self._neg_iou_thresh_low,
                                self._neg_iou_thresh_high, usable=kind > 1.5)   # (B, C)
        return labels * (kind > 0.5)                                        # (B, C)

    def _select(self, F, labels):
        """Random positives within the quota, then random negatives filling the slots.

        labels: (B, C) -> ``(index, take)``, both (B, K): slot j holds candidate
        ``index[b, j]`` where ``take`` is 1; positives come first. One draw of
        random keys ranks both groups: the kept positives (a random subset of
        at most P) get 2 added, so one top-K lists them first and the
        negatives of largest key fill the remaining slots.
        """
        keys = F.random.uniform_like(labels)                                # (B, C) in [0, 1)
        eligible = labels < 0                                               # (B, C)
        if self._max_pos > 0:
            kept, _ = _ops.random_subset(F, labels > 0, self._max_pos, keys=keys)  # (B, C)
            keys = keys + 2 * kept                                          # (B, C)
            eligible = eligible + kept                                      # (B, C)
        return _ops.top_entries(F, keys, eligible, self._num_sample)        # (B, K) each

    def __repr__(self):
        args = dict(num_sample=self._num_sample, max_pos=self._max_pos,
                    pos_iou_thresh=self._pos_iou_thresh,
                    neg_iou_thresh_high=self._neg_iou_thresh_high,
                    neg_iou_thresh_low=self._neg_iou_thresh_low)
        return '{}({})'.format(self.__class__.__name__,
                               ', '.join('{}={}'.format(k, v) for k, v in args.items()))
