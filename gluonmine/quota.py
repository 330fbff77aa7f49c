"""QuotaSampler: the RCNN-stage rule, and the base every quota sampler shares.

Shape shorthand: B images, N candidates, M ground truths.
samples: +1 positive, -1 negative, 0 ignore; matches: index in [0, M).
"""
# pylint: disable=arguments-differ, invalid-name
from . import _checks, labeling, sampling
from ._block import SelectionBlock


class _QuotaSamplerBase(sampling.QuotaProperties, SelectionBlock):
    """Label by IoU bands, subsample to quotas, match: shared by the quota samplers.

    Subclasses only validate and name their arguments; the rule itself is
    :func:`gluonmine.labeling.label` then :func:`gluonmine.sampling.subsample`.
    """

    def __init__(self, num_sample, pos_iou_thresh, neg_iou_thresh_low, neg_iou_thresh_high,
                 pos_ratio, fill_negative, force_positives=False, min_forced_iou=0.,
                 clobber_positives=False, **kwargs):
        super(_QuotaSamplerBase, self).__init__(**kwargs)
        self._num_sample = num_sample
        self._max_pos = sampling.max_positives(num_sample, pos_ratio)
        self._fill_negative = bool(fill_negative)
        self._label_args = dict(
            pos_iou_thresh=pos_iou_thresh, neg_iou_thresh_low=neg_iou_thresh_low,
            neg_iou_thresh_high=neg_iou_thresh_high, force_positives=force_positives,
            min_forced_iou=min_forced_iou, clobber_positives=bool(clobber_positives))

    @property
    def label_args(self):
        """The arguments of :func:`gluonmine.labeling.label` this sampler applies (a copy)."""
        return dict(self._label_args)

    def label(self, F, ious, usable=None, positive=None):
        """Labels before subsampling: ious (B, N, M) -> samples (B, N).

        ``usable`` and ``positive`` (see :func:`gluonmine.labeling.label`) may
        be passed by a caller that computed them already, sparing passes over
        the IoU matrix.
        """
        return labeling.label(F, ious, usable=usable, positive=positive, **self._label_args)

    def subsample(self, F, samples):
        """Random subsampling to the quotas: samples (B, N) -> (B, N)."""
        return sampling.subsample(F, samples, self._num_sample, self._max_pos,
                                  self._fill_negative)

    def check_inputs(self, ious):  # pylint: disable=arguments-differ
        _checks.check_shape('ious', ious, '(B, N, M)')
        return (_checks.padding_if_empty(ious, axis=2, value=0.),)

    def hybrid_forward(self, F, ious):
        samples = self.subsample(F, self.label(F, ious))                    # (B, N)
        return samples, labeling.match(F, ious)                             # (B, N) each

    def __repr__(self):
        args = dict(num_sample=self._num_sample, max_pos=self._max_pos,
                    fill_negative=self._fill_negative, **self._label_args)
        return '{}({})'.format(self.__class__.__name__,
                               ', '.join('{}={}'.format(k, v) for k, v in args.items()))


def check_band_args(pos_iou_thresh, neg_iou_thresh_high, neg_iou_thresh_low):
    """Validate the RCNN-stage thresholds: ``0 <= low <= high <= pos <= 1``, ``pos > 0``.

    Returns ``(pos, high, low)`` as the float32 values MXNet compares with.
    """
    pos = _checks.check_number('pos_iou_thresh', pos_iou_thresh, 0., 1., low_open=True,
                               float32=True)
    high = _checks.check_number('neg_iou_thresh_high', neg_iou_thresh_high, 0., 1.,
                                float32=True)
    low = _checks.check_number('neg_iou_thresh_low', neg_iou_thresh_low, 0., 1., float32=True)
    _checks.check_order('neg_iou_thresh_high', high, 'pos_iou_thresh', pos)
    _checks.check_order('neg_iou_thresh_low', low, 'neg_iou_thresh_high', high)
    return pos, high, low


def check_quota_args(num_sample, pos_ratio):
    """Validate the quota arguments shared by every sampler; returns them converted."""
    return (_checks.check_int('num_sample', num_sample, low=1),
            _checks.check_number('pos_ratio', pos_ratio, 0., 1.))


class QuotaSampler(_QuotaSamplerBase):
    """Sample RoIs for the RCNN head: IoU bands and quotas, no forced positives.

    The Fast R-CNN rule (Girshick, 2015, Sec. 2.3): a candidate whose largest
    usable IoU ``best`` is >= ``pos_iou_thresh`` is positive, one with
    ``neg_iou_thresh_low <= best < neg_iou_thresh_high`` is negative (Fast
    R-CNN's background band [0.1, 0.5); OHEM uses a lower bound of 0), anything
    else, and any candidate without a usable pair, is ignored. Then at most
    ``round(num_sample * pos_ratio)`` positives are kept, uniformly at random,
    and negatives fill the remaining ``num_sample`` slots (or only
    ``num_sample - max_pos`` of them without ``fill_negative``). Counts are
    exact; random draws come from ``mx.random``.

    Parameters
    ----------
    num_sample : int, default 128
        Candidates sampled per image.
    pos_iou_thresh : float, default 0.5
        Smallest IoU of a positive.
    neg_iou_thresh_high : float, default 0.5
        Negatives have IoU below this; must be <= ``pos_iou_thresh``.
    neg_iou_thresh_low : float, default 0.0
        Negatives have IoU at least this; must be in [0, ``neg_iou_thresh_high``].
    pos_ratio : float, default 0.25
        Fraction of ``num_sample`` that positives may take.
    fill_negative : bool, default True
        Whether negatives fill the slots that missing positives leave.

    Inputs:
        - **ious**: (B, N, M) float32 IoU of each candidate with each ground
          truth; negative or NaN marks a pair that must not be used.

    Outputs:
        - **samples**: (B, N) float32, +1 positive, -1 negative, 0 ignore.
        - **matches**: (B, N) float32, argmax ground truth over usable columns
          (lowest index on ties, 0 where none is usable).
    """

    def __init__(self, num_sample=128, pos_iou_thresh=0.5, neg_iou_thresh_high=0.5,
                 neg_iou_thresh_low=0.0, pos_ratio=0.25, fill_negative=True, **kwargs):
        num_sample, pos_ratio = check_quota_args(num_sample, pos_ratio)
        pos, high, low = check_band_args(pos_iou_thresh, neg_iou_thresh_high, neg_iou_thresh_low)
        super(QuotaSampler, self).__init__(num_sample, pos, low, high, pos_ratio,
                                           fill_negative, **kwargs)
