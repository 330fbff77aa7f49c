"""Evaluation of a detector: VOC07 AP per class and mAP, precision-recall curves.

:func:`evaluate` is an epoch's evaluation during training (and COCO's own AP
with ``coco_eval``); :func:`detection_metric` runs the net over a validation
loader into GluonCV's ``VOC07MApMetric``; :func:`average_precisions` and
:func:`precision_curves` read it.
"""
import warnings

import mxnet as mx
import numpy as np
from gluoncv.nn.bbox import BBoxClipToImage
from gluoncv.utils.metrics.voc_detection import VOC07MApMetric
from mxnet import autograd

from report import progress


#: Recall levels of :func:`precision_curves`: 0, 0.01, ..., 1.
RECALL_LEVELS = np.linspace(0., 1., 101)


def evaluate(net, loader, ctx, classes, coco=None):
    """An epoch's evaluation: ``{'map': ...}``, VOC07 11-point AP at IoU 0.5 for each
    class and their mean (key 'mAP', :func:`average_precisions`), and with a
    ``coco_eval.COCOMetric`` given, ``'coco'``: COCO's AP summaries from the same
    detections."""
    metric = detection_metric(net, loader, ctx, classes, coco)
    result = {'map': average_precisions(metric)}
    if coco is not None:
        result['coco'] = coco.get()
    return result


def detection_metric(net, loader, ctx, classes, coco=None):
    """GluonCV's ``VOC07MApMetric`` (IoU 0.5) after the net's detections on every image.

    ``loader`` yields ``(images, labels, scales)`` lists as :func:`loaders.val_loader`
    makes them: ``net(image)`` gives ``(ids, scores, boxes)`` at the image's
    size, ``scale`` (one factor, or one for each box coordinate x1, y1, x2, y2)
    maps them and the labels back to the original pixels. The net is
    re-hybridized for one-input prediction and runs in predict mode; a
    progress bar counts the batches. A ``coco_eval.COCOMetric`` given as
    ``coco`` is reset and fed the same detections.
    """
    metric = VOC07MApMetric(iou_thresh=0.5, class_names=classes)
    metrics = [metric] + ([coco] if coco is not None else [])
    if coco is not None:
        coco.reset()
    clipper = BBoxClipToImage()
    net.hybridize()
    bar = progress(len(loader), 'evaluate')
    with autograd.predict_mode(), warnings.catch_warnings():
        # prediction does not read training-only constants (Faster R-CNN's box encoder)
        warnings.filterwarnings('ignore', 'Parameter .* is not used by any computation')
        for batch in loader:
            for x, y, scale in zip(*[[a.as_in_context(c) for a, c in zip(part, ctx)]
                                     for part in batch]):
                ids, scores, boxes = net(x)
                scale = scale.reshape((1, 1, -1))                   # (1, 1, 1) or (1, 1, 4)
                boxes = mx.nd.broadcast_mul(clipper(boxes, x), scale)
                truth = mx.nd.broadcast_mul(y[:, :, :4], scale)
                for each in metrics:
                    each.update(boxes, ids, scores, truth, y[:, :, 4:5],
                                y[:, :, 5:6] if y.shape[-1] > 5 else None)
            bar.update()
    bar.close()
    return metric


def average_precisions(metric):
    """AP of each class and 'mAP' from a :func:`detection_metric`; None for a class
    without any ground truth in the evaluated images (for 'mAP': no class has any)."""
    if not _seen_anything(metric):
        return {name: None for name in metric.name}
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', 'Mean of empty slice', RuntimeWarning)  # mAP: NaN
        names, values = metric.get()
    return {name: float(value) if value == value else None for name, value in zip(names, values)}


def precision_curves(metric, classes):
    """Interpolated precision at each of :data:`RECALL_LEVELS`, for each class.

    The interpolated precision at recall r is the highest precision reached at
    recall r or beyond, 0 past the class's last recall: what VOC's AP averages
    (VOC07 at r = 0, 0.1, ..., 1). Returns class name -> list of 101 floats,
    None for a class without ground truth.
    """
    recalls, precisions = (metric._recall_prec()  # pylint: disable=protected-access
                           if _seen_anything(metric) else ([], []))
    curves = {}
    for label, name in enumerate(classes):
        rec = recalls[label] if label < len(recalls) else None
        if rec is None:
            curves[name] = None
            continue
        best_after = np.maximum.accumulate(np.nan_to_num(precisions[label])[::-1])[::-1]
        first = np.searchsorted(rec, RECALL_LEVELS, side='left')    # rec is non-decreasing
        reached = first < len(rec)
        curves[name] = np.where(reached, best_after[np.minimum(first, len(rec) - 1)]
                                if len(rec) else 0., 0.).tolist()
    return curves


def _seen_anything(metric):
    """Whether GluonCV's VOC metric saw a detection or a ground truth of any class: one
    that saw neither raises ValueError when read (``max()`` of no class labels)."""
    return bool(metric._n_pos)  # pylint: disable=protected-access
