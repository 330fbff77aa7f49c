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


def forced_positives(F, ious, min_forced_iou=0.):
    """Candidates that reach the best IoU of some ground truth.

    Faster R-CNN (Ren et al., 2015, Sec. 3.1.2) makes the anchor(s) with the
    highest IoU for each ground truth positive, so every object gets one. For
    each ground truth j whose best usable IoU ``g_j`` exceeds ``min_forced_iou``,
    every candidate with IoU >= g_j - EPS is marked (ties included). A ground
    truth that overlaps nothing (``g_j`` = 0, padding) or only unusable pairs
    forces nothing.

    ious: (B, N, M) -> (B, N) in {0, 1}.
    """
    best_per_gt = _ops.col_max(F, ious)                                     # (B, M)
    forcing = best_per_gt > min_forced_iou                                  # (B, M)
    never = F.ones_like(best_per_gt) * _ops.INF                             # (B, M)
    cut = F.where(forcing, best_per_gt - EPS, never)                        # (B, M)
    return _ops.row_any(F, F.broadcast_greater_equal(ious, F.expand_dims(cut, axis=1)))  # (B, N)


def label(F, ious, pos_iou_thresh, neg_iou_thresh_low, neg_iou_thresh_high,
          force_positives=False, min_forced_iou=0., clobber_positives=False, usable=None):
    """Positive / negative / ignore labels by IoU bands.

    With ``best`` the largest usable IoU of a candidate: positive when
    ``best >= pos_iou_thresh``, negative when ``neg_iou_thresh_low <= best <
    neg_iou_thresh_high``, else ignored. A candidate without a usable pair is
    ignored (``neg_iou_thresh_low`` must be >= 0). With ``force_positives`` the
    :func:`forced_positives` join the positives; they stay positive below
    ``neg_iou_thresh_high`` unless ``clobber_positives``, which applies the
    negative rule last (GluonCV 0.10's ``RPNTargetSampler``).

    ``best`` itself is never formed: ``best >= t`` is "some usable IoU >= t",
    a count over M, which is several times cheaper than a maximum over M.
    NaN compares false, so NaN pairs never count.

    ious: (B, N, M) -> samples (B, N). ``usable`` (B, N) may replace the test
    ``best >= neg_iou_thresh_low`` when the caller knows it (the RPN target
    generator: low is 0 and every pair of an anchor inside the image is usable).
    """
    if usable is None:
        usable = _ops.row_any(F, ious >= neg_iou_thresh_low)                # (B, N)
    positive = _ops.row_any(F, ious >= pos_iou_thresh)                      # (B, N)
    negative = usable * (1 - _ops.row_any(F, ious >= neg_iou_thresh_high))  # (B, N)
    if force_positives:
        forced = forced_positives(F, ious, min_forced_iou)                  # (B, N)
        positive = F.maximum(positive, forced)                              # (B, N)
        if clobber_positives:
            positive = positive * (1 - negative)
        else:
            negative = negative * (1 - forced)
    return positive - negative                                              # (B, N)


def match(F, ious):
    """Index of the ground truth each candidate matches.

    The argmax over usable columns (IoU >= 0), the lowest index on ties, 0
    where no column is usable. ious: (B, N, M) -> (B, N).
    """
    index, _ = _ops.masked_argmax(F, ious, ious >= 0)                       # (B, N)
    return index
