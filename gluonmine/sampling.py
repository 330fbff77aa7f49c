"""Quota subsampling: the "select" step of the RPN and RCNN samplers.

Shape shorthand: B images, N candidates; samples: +1 positive, -1 negative,
0 ignore.
"""
# pylint: disable=invalid-name
from . import _ops


class QuotaProperties(object):
    """``num_sample`` and ``max_pos`` of a quota sampler (from ``_num_sample``, ``_max_pos``)."""

    @property
    def num_sample(self):
        """Candidates sampled per image (positives plus negatives)."""
        return self._num_sample

    @property
    def max_pos(self):
        """Positive quota per image, ``round(num_sample * pos_ratio)``."""
        return self._max_pos


def max_positives(num_sample, pos_ratio):
    """The positive quota, ``round(num_sample * pos_ratio)`` as GluonCV computes it."""
    return int(round(num_sample * pos_ratio))


def subsample(F, samples, num_sample, max_pos, fill_negative=True):
    """Keep uniformly random positives and negatives within their quotas.

    Positives: a random ``min(num_pos, max_pos)`` of them. Negatives: a random
    ``min(num_neg, quota)``, with ``quota = num_sample - min(num_pos, max_pos)``
    when ``fill_negative`` (negatives fill slots positives leave empty), else
    ``num_sample - max_pos``. Counts are exact; the rest become 0 (ignore).
    Positives and negatives are disjoint, so one draw of random keys serves both.

    samples: (B, N) -> (B, N).
    """
    positive = samples > 0                                                  # (B, N)
    negative = samples < 0                                                  # (B, N)
    keys = F.random.uniform_like(samples)                                   # (B, N)
    if max_pos > 0:
        keep_pos, num_pos = _ops.random_subset(F, positive, max_pos, keys=keys)  # (B, N), (B, 1)
    else:
        keep_pos, num_pos = F.zeros_like(samples), None
    if fill_negative and num_pos is not None:
        quota = num_sample - num_pos                                        # (B, 1)
        neg_k = num_sample
    else:
        quota, neg_k = None, num_sample - max_pos
    if neg_k > 0:
        keep_neg, _ = _ops.random_subset(F, negative, neg_k, count=quota, keys=keys)  # (B, N)
    else:
        keep_neg = F.zeros_like(samples)
    return keep_pos - keep_neg                                              # (B, N)
