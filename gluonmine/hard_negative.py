"""SSD hard negative mining: keep every positive and the hardest negatives of each image.

Shape shorthand: B images, N candidates.
samples: +1 positive, -1 negative, 0 ignore.
"""
# pylint: disable=arguments-differ, invalid-name
from . import _checks, _ops
from ._block import SelectionBlock


def negative_quota(F, positive, ratio, minimum):
    """Negatives allowed in each row: ``floor(max(ratio * num_positives, minimum))``.

    SSD's rule (and the TensorFlow API's ``max_negatives_per_positive`` cap):
    positive: (B, N) in {0, 1}; ratio, minimum: numbers >= 0 -> (B, 1). The
    product is taken in float32; for an integer ``minimum`` this is
    ``max(floor(ratio * num_positives), minimum)``.
    """
    return F.floor(F.maximum(_ops.row_sum(F, positive) * ratio, minimum))   # (B, 1)


class HardNegativeMiner(SelectionBlock):
    """Keep every positive and, per image, the negatives of highest loss.

    The hard negative mining of SSD (Liu et al., ECCV 2016, Sec. 2.2): per
    image, the ``max(min_negatives, floor(neg_pos_ratio * num_pos))``
    negatives of largest loss stay -1 (the product in float32); other
    negatives become 0 (ignore). Equal losses keep the lower index first. A
    negative whose loss is NaN or infinite is never kept. Positives and
    ignored candidates pass through unchanged; an image with fewer negatives
    than its quota keeps them all.

    GluonCV's ``SSDMultiBoxLoss`` keeps the negatives of rank ``< ratio *
    num_pos``, i.e. the ceiling for a fractional product; with an integer
    ratio (SSD's 3) the two agree.

    Speed: the quota is cut with one top-k of ``_ops.FAST_K`` (256)
    per image; images with a larger quota take their cut from a full sort.

    Parameters
    ----------
    neg_pos_ratio : float, default 3
        Negatives kept per positive, >= 0 (SSD uses 3).
    min_negatives : int, default 0
        Negatives kept even in an image without positives.

    Inputs:
        - **losses**: (B, N) float32 per-candidate loss (e.g. the
          classification loss of each anchor).
        - **samples**: (B, N) float32, +1 positive, -1 negative, 0 ignore.

    Outputs:
        - **samples**: (B, N) float32, same convention; only negatives change.
    """

    def __init__(self, neg_pos_ratio=3, min_negatives=0, **kwargs):
        super(HardNegativeMiner, self).__init__(**kwargs)
        self._neg_pos_ratio = _checks.check_number('neg_pos_ratio', neg_pos_ratio, 0.,
                                                   float('inf'), high_open=True, float32=True)
        self._min_negatives = _checks.check_int('min_negatives', min_negatives)

    def check_inputs(self, losses, samples):
        _checks.check_shape('losses', losses, '(B, N)')
        _checks.check_shape('samples', samples, '(B, N)')
        _checks.check_same_leading('losses', losses, 'samples', samples)
        return losses, samples

    def hybrid_forward(self, F, losses, samples):
        positive = samples > 0                                              # (B, N)
        negative = (samples < 0) * _ops.finite(F, losses)                   # (B, N)
        masked = _ops.mask_invalid(F, losses, negative)                     # (B, N)
        quota = negative_quota(F, positive, self._neg_pos_ratio, self._min_negatives)  # (B, 1)
        return positive - _ops.count_mask(F, masked, quota)                 # (B, N)

    def __repr__(self):
        return '{}(neg_pos_ratio={}, min_negatives={})'.format(
            self.__class__.__name__, self._neg_pos_ratio, self._min_negatives)
