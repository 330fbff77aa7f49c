"""Label candidates from an IoU matrix: the first step of every sampler.

Shape shorthand: B images, N candidates, M ground truths.
samples: +1 positive, -1 negative, 0 ignore; matches: index in [0, M).

An IoU below 0 (GluonCV writes -1) or NaN marks a pair that must not be used; a
padding ground truth has IoU 0 with every usable candidate, so it forces
nothing and an image without objects yields only negatives and ignores.
"""
# pylint: disable=invalid-name
import numpy as np

from . import _ops

#: float32 spacing at 1.0, the tolerance GluonCV uses for "ties the best IoU".
EPS = float(np.spacing(np.float32(1.0)))


def positive_cut(F, best_per_gt, pos_iou_thresh, min_forced_iou=0.):
    """The IoU with each ground truth that makes a candidate positive.

    A candidate is positive when some IoU reaches ``pos_iou_thresh``, or when
    it reaches a ground truth's best IoU ``g_j`` (within EPS): the forced
    positives of Faster R-CNN (Ren et al., 2015, Sec. 3.1.2), so every object
    gets an anchor. Both are "IoU with ground truth j >= cut_j" for
    ``cut_j = min(pos_iou_thresh, g_j - EPS)``; a ground truth whose best usable
    IoU does not exceed ``min_forced_iou`` (padding, one that overlaps nothing,
    one with only unusable pairs) forces nothing: its cut stays at the threshold.

    best_per_gt: (B, M) -> (B, M).
    """
    cut = F.minimum(best_per_gt - EPS, pos_iou_thresh)                      # (B, M)
    return F.where(best_per_gt > min_forced_iou, cut, _ops.full_like(F, cut, pos_iou_thresh))


def positive_or_forced(F, ious, pos_iou_thresh, min_forced_iou=0.):
    """Candidates positive by threshold or forced by a ground truth's best IoU.

    See :func:`positive_cut`. ious: (B, N, M) -> (B, N) in {0, 1}.
    """
    cut = positive_cut(F, _ops.col_max(F, ious), pos_iou_thresh, min_forced_iou)  # (B, M)
    return _ops.row_any(F, F.broadcast_greater_equal(ious, F.expand_dims(cut, axis=1)))  # (B, N)


def label(F, ious, pos_iou_thresh, neg_iou_thresh_low, neg_iou_thresh_high,
          force_positives=False, min_forced_iou=0., clobber_positives=False, usable=None,
          positive=None):
    """Positive / negative / ignore labels by IoU bands, with forced positives.

    With ``best`` the largest usable IoU of a candidate: positive when
    ``best >= pos_iou_thresh`` (or, with ``force_positives``, when forced, see
    :func:`positive_cut`), negative when ``neg_iou_thresh_low <= best <
    neg_iou_thresh_high``, else ignored; a candidate without a usable pair is
    always ignored (``neg_iou_thresh_low`` must be >= 0). Forced positives stay
    positive in the negative band unless ``clobber_positives``, which applies
    the negative rule last (GluonCV 0.10's ``RPNTargetSampler``). Threshold
    positives never fall in the negative band (``neg_iou_thresh_high <=
    pos_iou_thresh``), so only their union with the forced ones matters.

    ``best`` itself is never formed: ``best >= t`` is "some IoU >= t", a count
    over M, several times cheaper than a maximum over M on MXNet; NaN compares
    false, so NaN pairs never count.

    ious: (B, N, M) -> samples (B, N). A caller that has them may pass
    ``usable`` (candidates with a usable pair, which it may narrow further: an
    anchor inside the image, a live proposal) and ``positive`` (this rule's
    positives), in any layout ``ious`` shares with ground truths last: then
    ``ious`` may be (N, B, M) and the result is (N, B). The lower negative
    bound applies to a given ``usable`` too.
    """
    if usable is None or neg_iou_thresh_low > 0:
        # with a bound of 0, "some IoU >= 0" is what a given usable already says
        reach = _ops.row_any(F, ious >= neg_iou_thresh_low)                 # (B, N)
        usable = reach if usable is None else usable * reach                # (B, N)
    negative = usable * (1 - _ops.row_any(F, ious >= neg_iou_thresh_high))  # (B, N)
    if positive is None:
        positive = (positive_or_forced(F, ious, pos_iou_thresh, min_forced_iou)
                    if force_positives else _ops.row_any(F, ious >= pos_iou_thresh))  # (B, N)
    if clobber_positives:
        positive = positive * (1 - negative)
    else:
        negative = negative * (1 - positive)
    return positive - negative                                              # (B, N)


def match(F, ious):
    """Index of the ground truth each candidate matches.

    The argmax over usable columns (IoU >= 0), the lowest index on ties, 0
    where no column is usable. Unusable pairs (negative, NaN) are replaced by
    -1, below every usable IoU, before the search; the replacement is made from
    the comparison itself (``usable - 1``), two passes over the IoU matrix
    instead of four. ious: (B, N, M) -> (B, N).
    """
    usable = ious >= 0                                                      # (B, N, M)
    return F.argmax(F.where(usable, ious, usable - 1), axis=-1)             # (B, N)
