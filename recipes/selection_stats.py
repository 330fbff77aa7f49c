"""What the samplers and miners of a run chose, accumulated over its images.

Samples follow gluonmine's convention: +1 positive, -1 negative, 0 ignore.
Boxes are corners (x1, y1, x2, y2); padding ground-truth rows are -1.
"""
import numpy as np

from gluonmine.rcnn_ohem import NEGATIVE_IOU_EDGES


class SelectionStats(object):
    """What a sampler selected, accumulated over images.

    Per image: positives (+1), negatives (-1), the fill rate (labelled slots
    over ``num_sample``), and when candidate boxes are given, the duplicate
    rate (labelled candidates identical to an earlier labelled one of the same
    image) and the histogram of each selected negative's best IoU with the
    image's ground truths.

    Parameters
    ----------
    num_sample : int, default None
        Slots a sampler fills per image (the fill rate's denominator); None:
        the width N of ``samples``.
    """

    # gluonmine's OHEM statistics' edges (width 0.05 over the negative band), then 1
    IOU_EDGES = NEGATIVE_IOU_EDGES + (1.0,)

    def __init__(self, num_sample=None):
        self.num_sample = num_sample
        self.slots = 0
        self.images = 0
        self.positives = 0
        self.negatives = 0
        self.labelled = 0
        self.duplicates = 0
        self.iou_counts = np.zeros(len(self.IOU_EDGES) - 1, dtype=np.int64)
        self.iou_sum = 0.

    def update(self, samples, boxes=None, gt_boxes=None):
        """samples (B, N) in {+1, -1, 0}; boxes (B, N, 4) and gt_boxes (B, M, 4), -1 padding."""
        samples = np.asarray(samples)
        self.images += samples.shape[0]
        self.slots += samples.shape[0] * (self.num_sample or samples.shape[1])
        self.positives += int((samples > 0.5).sum())
        self.negatives += int((samples < -0.5).sum())
        self.labelled += int((np.abs(samples) > 0.5).sum())
        if boxes is None:
            return
        for sample, box, gt in zip(samples, np.asarray(boxes), np.asarray(gt_boxes)):
            chosen = box[np.abs(sample) > 0.5]
            self.duplicates += len(chosen) - len(np.unique(chosen, axis=0))
            best = max_iou(box[sample < -0.5], gt)
            self.iou_counts += np.histogram(best, bins=self.IOU_EDGES)[0]
            self.iou_sum += float(best.sum())

    def merge(self, other):
        """Add another accumulator's counts (same ``num_sample``) to this one."""
        for name in ('slots', 'images', 'positives', 'negatives', 'labelled', 'duplicates',
                     'iou_sum'):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.iou_counts = self.iou_counts + other.iou_counts

    def summary(self):
        images = max(self.images, 1)
        out = {'images': self.images, 'positives_per_image': self.positives / images,
               'negatives_per_image': self.negatives / images,
               'fill_rate': self.labelled / float(max(self.slots, 1))}
        if self.iou_counts.sum() or self.duplicates:
            out['duplicate_rate'] = self.duplicates / float(max(self.labelled, 1))
            out['negative_iou_mean'] = self.iou_sum / float(max(self.iou_counts.sum(), 1))
            out['negative_iou_histogram'] = {'edges': list(self.IOU_EDGES),
                                             'counts': self.iou_counts.tolist()}
        return out


def max_iou(boxes, gt_boxes):
    """Best IoU of each box (K, 4) with the valid rows of gt_boxes (M, 4): (K,); 0 if none."""
    iou = iou_matrix(boxes, gt_boxes)                                   # (K, M')
    return iou.max(axis=1) if iou.size else np.zeros(len(boxes))


def valid_boxes(gt_boxes):
    """The rows of gt_boxes (M, 4) that are boxes (x2 > x1, y2 > y1), not padding: (M', 4)."""
    return gt_boxes[(gt_boxes[:, 2] > gt_boxes[:, 0]) & (gt_boxes[:, 3] > gt_boxes[:, 1])]


def iou_matrix(boxes, gt_boxes):
    """IoU of each box (K, 4) with each valid row of gt_boxes (M, 4): (K, M'), NumPy."""
    gt = valid_boxes(gt_boxes)
    lt = np.maximum(boxes[:, None, :2], gt[None, :, :2])                # (K, M', 2)
    rb = np.minimum(boxes[:, None, 2:], gt[None, :, 2:])                # (K, M', 2)
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)                 # (K, M')
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=-1)
    gt_area = np.prod(gt[:, 2:] - gt[:, :2], axis=-1)
    union = area[:, None] + gt_area[None, :] - inter                    # (K, M')
    return inter / np.maximum(union, 1e-12)


class MiningStats(object):
    """Mean loss of the mined candidates against the mean over all candidates."""

    def __init__(self):
        self.mined, self.all, self.count = 0., 0., 0

    def update(self, mined_loss_mean, all_loss_mean):
        self.mined += float(mined_loss_mean)
        self.all += float(all_loss_mean)
        self.count += 1

    def merge(self, other):
        self.mined, self.all = self.mined + other.mined, self.all + other.all
        self.count += other.count

    def summary(self):
        if not self.count:
            return None
        return {'mined_loss_mean': self.mined / self.count,
                'all_loss_mean': self.all / self.count}
