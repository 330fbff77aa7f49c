"""COCO's own detection metric for ``--dataset coco``, next to VOC07 AP.

A GluonCV user training on COCO compares AP averaged over IoU 0.5:0.95 (and
its AP50, AP75 and small / medium / large breakdown), which VOC07 AP@0.5 is
not. :class:`COCOMetric` computes those six numbers with pycocotools'
``COCOeval`` against the annotation file itself (crowd regions and areas as
COCO defines them), over exactly the images evaluated, so ``--num-val-images
N`` gives the AP of those N images, not of all of val2017 with the rest
counted as missed.
"""
import contextlib
import io
import os

#: The summaries of ``COCOeval.stats`` kept, in its order (maxDets 100).
STATS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')


def coco_metric(args, num_images):
    """A :class:`COCOMetric` for the run's validation images, or None unless ``--dataset coco``.

    args: the recipe's flags (``dataset``, ``dataset_root``); num_images: how
    many of val2017's images are evaluated (the first ones).
    """
    if args.dataset != 'coco':
        return None
    root = os.path.expanduser(args.dataset_root)
    return COCOMetric(os.path.join(root, 'annotations', 'instances_val2017.json'), num_images)


def _quietly(call, *args):
    """pycocotools prints its progress; the recipes log their own."""
    with contextlib.redirect_stdout(io.StringIO()):
        return call(*args)


class COCOMetric(object):
    """pycocotools' ``COCOeval`` (boxes) fed like GluonCV's ``VOC07MApMetric``.

    Images arrive in the order of GluonCV's ``COCODetection`` with
    ``skip_empty=False`` (what the recipes evaluate on): every image of the
    annotation file, by increasing id. Class ``c`` of the network is the
    ``c``-th category in the file's order, as ``COCODetection`` numbers them.
    Boxes go back to COCO's (x, y, width, height) as GluonCV's loader made
    them corners: width ``x2 - x1 + 1`` (``COCODetection`` reads width w as
    ``x2 = x1 + w - 1``), as GluonCV's ``COCODetectionMetric`` does; unlike
    it, no detection is dropped for a low score (COCO's own rule: the 100
    best an image count).

    Parameters
    ----------
    annotation : str
        The ground truth: a COCO instances JSON (``instances_val2017.json``).
    num_images : int, default None
        Only the first N images are evaluated; None: all of them.
    """

    def __init__(self, annotation, num_images=None):
        from pycocotools.coco import COCO  # pylint: disable=import-outside-toplevel
        self._coco = _quietly(COCO, annotation)
        image_ids = sorted(self._coco.getImgIds())
        self._image_ids = image_ids[:num_images] if num_images else image_ids
        self._category_ids = self._coco.getCatIds()                 # file order, as GluonCV's
        self._detections, self._seen = [], 0

    def reset(self):
        self._detections, self._seen = [], 0

    def update(self, pred_bboxes, pred_labels, pred_scores, *ground_truth):
        """Add one batch of detections, images in dataset order.

        pred_bboxes (B, K, 4) corners in the original image's pixels,
        pred_labels and pred_scores (B, K, 1) or (B, K); NDArrays. Entries
        with a negative label are padding. The ground truth arguments of
        ``VOC07MApMetric.update`` are accepted and ignored: the annotation
        file is the truth.
        """
        batch = [a.asnumpy().reshape((a.shape[0], a.shape[1], -1))
                 for a in (pred_bboxes, pred_labels, pred_scores)]
        for boxes, labels, scores in zip(*batch):
            if self._seen == len(self._image_ids):
                raise ValueError('more images than the {} to evaluate'.format(
                    len(self._image_ids)))
            image_id = self._image_ids[self._seen]
            self._seen += 1
            for (x1, y1, x2, y2), label, score in zip(boxes, labels[:, 0], scores[:, 0]):
                if label >= 0:
                    self._detections.append({
                        'image_id': image_id, 'category_id': self._category_ids[int(label)],
                        'bbox': [float(x1), float(y1), float(x2 - x1 + 1), float(y2 - y1 + 1)],
                        'score': float(score)})

    def get(self):
        """Name -> value for :data:`STATS` over the images seen so far.

        A value is None where COCO leaves it undefined (no ground truth in
        that area range); with no detection at all, every defined value is 0.
        """
        from pycocotools.cocoeval import COCOeval  # pylint: disable=import-outside-toplevel
        seen = self._image_ids[:self._seen]
        if not seen:
            return dict.fromkeys(STATS)
        # loadRes cannot take an empty list; one box of no size and no score
        # matches nothing, so it changes no AP.
        detections = self._detections or [{'image_id': seen[0], 'bbox': [0., 0., 0., 0.],
                                           'category_id': self._category_ids[0], 'score': 0.}]
        evaluation = COCOeval(self._coco, _quietly(self._coco.loadRes, detections), 'bbox')
        evaluation.params.imgIds = seen
        for step in (evaluation.evaluate, evaluation.accumulate, evaluation.summarize):
            _quietly(step)
        return {name: float(value) if value >= 0 else None
                for name, value in zip(STATS, evaluation.stats)}
