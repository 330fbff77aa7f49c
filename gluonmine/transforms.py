"""Data-side integration: GluonCV's R-CNN training transforms with gluonmine's RPN targets.

Shape shorthand: N anchors of one image, M ground truths. RPN targets follow
GluonCV: cls_target +1 positive, 0 negative, -1 ignore.
"""
import multiprocessing
import os
import threading

import mxnet as mx
import numpy as np
from gluoncv.data.transforms.presets.rcnn import (FasterRCNNDefaultTrainTransform,
                                                  MaskRCNNDefaultTrainTransform)

from . import _checks
from .rpn import RPNTargetGenerator

# Gluon builds a hybridized block's graph at its first call, and neither that nor its
# cached graph is safe to enter from two threads at once (the build fails inside Gluon's
# name scope); DataLoader(thread_pool=True) runs transforms in threads: calls take turns
_GENERATOR_LOCK = threading.Lock()


# The parameters both transforms document alike, filled into their docstrings by
# _document (``{network}``: the net's GluonCV class; ``{returned}``: what
# device_targets=True returns)
_LEADING_PARAMETERS = """\
    short : int or tuple of int, default 600
        Shorter image side after resizing; a (low, high) tuple draws it at random.
    max_size : int, default 1000
        Longest image side after resizing.
    net : gluoncv {network}, default None
        The network, for its anchors and feature shapes; ``None`` makes no targets.
    mean : tuple of 3 float, default (0.485, 0.456, 0.406)
        Pixel mean subtracted after scaling to [0, 1].
    std : tuple of 3 float, default (0.229, 0.224, 0.225)
        Pixel standard deviation divided by.
    box_norm : tuple of 4 float, default (1., 1., 1., 1.)
        Divisors of the encoded box targets.
    num_sample : int, default 256
        Anchors sampled per image (default sampler).
    pos_iou_thresh : float, default 0.7
        Smallest IoU of a positive anchor (default sampler).
    neg_iou_thresh : float, default 0.3
        Negatives have IoU below this (default sampler).
    pos_ratio : float, default 0.5
        Fraction of ``num_sample`` positives may take (default sampler).
"""
_TRAILING_PARAMETERS = """\
    ashape : int, default 128
        Side of the precomputed anchor map.
    multi_stage : bool, default False
        Whether the network has several feature levels (FPN).
    allowed_border : float, default 0
        Pixels an anchor may reach beyond the image before it is ignored.
    sampler : RPNTargetSampler or QuotaSampler, default None
        The RPN sampler; ``None`` builds the default one from the arguments above.
    device_targets : bool, default False
        Return ``{returned}`` only; make targets on the device instead.
    seed_from_numpy : bool, default False
        Seed ``mx.random`` of the process making the targets before each
        image's draws, from ``numpy.random``.
"""


def _document(network, returned):
    """Class decorator: the shared parameter entries filled into a transform's docstring."""
    def decorate(cls):
        if cls.__doc__ is None:                         # python -OO strips docstrings
            return cls
        cls.__doc__ = cls.__doc__.format(
            leading_parameters=_LEADING_PARAMETERS.format(network=network),
            trailing_parameters=_TRAILING_PARAMETERS.format(returned=returned))
        return cls
    return decorate


class _RPNTargets(object):
    """What gluonmine's transforms change in GluonCV's: the RPN targets of one image.

    GluonCV's training transforms call ``self._target_generator(gt_boxes,
    anchors, width, height)``; here that is gluonmine's hybridized
    :class:`~gluonmine.rpn.RPNTargetGenerator`, its calls taking turns
    between threads and ``mx.random`` reseeded once in each worker process,
    or before each image from ``numpy.random`` (``seed_from_numpy``).
    """

    @staticmethod
    def _build_generator(num_sample, pos_iou_thresh, neg_iou_thresh, pos_ratio, box_norm,
                         allowed_border, sampler):
        """The RPNTargetGenerator of the constructor's arguments; built before GluonCV's
        ``__init__``, it builds the default sampler and rejects any other kind first."""
        return RPNTargetGenerator(num_sample, pos_iou_thresh, neg_iou_thresh, pos_ratio,
                                  stds=box_norm, allowed_border=allowed_border, sampler=sampler)

    def _init_targets(self, generator, device_targets, seed_from_numpy):
        """Call at the end of ``__init__``, with the generator built from its arguments."""
        self._device_targets = bool(device_targets)
        self._seed_from_numpy = bool(seed_from_numpy)
        self._generator = generator
        # one cached graph instead of ~100 eager operator calls an image (2.5 ms
        # against 6.9 ms for the tiny recipe's images); shapes may change per call
        self._generator.hybridize()
        self._seed = int(np.random.randint(2 ** 31 - 1))
        self._pid = os.getpid()

    @property
    def target_generator(self):
        """The :class:`~gluonmine.rpn.RPNTargetGenerator` making this transform's targets.

        With ``device_targets=True``, call it in the training loop:
        ``cls_target, box_target, box_mask = generator(gt_boxes, anchors, im_hw)``.
        """
        return self._generator

    @property
    def _target_generator(self):
        # what GluonCV's __call__ uses to make one image's targets
        return None if self._anchors is None else self._one_image_targets

    def _one_image_targets(self, gt_boxes, anchors, width, height):
        """GluonCV's call: gt_boxes (M, 4), anchors (N, 4) -> NumPy (N,), (N, 4), (N, 4)."""
        im_hw = mx.nd.array([[height, width]], ctx=anchors.context)
        if gt_boxes.size == 0:      # MXNet cannot expand an empty array: (0, 4) -> (1, 0, 4)
            gt_boxes = mx.nd.full((1, 4), -1, ctx=anchors.context)
        with _GENERATOR_LOCK:       # a seed and the draws it governs, from one thread
            if self._seed_from_numpy:
                mx.random.seed(int(np.random.randint(2 ** 31 - 1)))
            else:
                self._seed_worker()
            cls_target, box_target, box_mask = self._generator(
                gt_boxes.expand_dims(axis=0), anchors, im_hw)
        return cls_target[0].asnumpy(), box_target[0].asnumpy(), box_mask[0].asnumpy()

    def _seed_worker(self):
        """Reseed mx.random once in each process other than the one that built us."""
        if os.getpid() == self._pid:
            return
        self._pid = os.getpid()
        # Pool workers are numbered 1, 2, ... in the order they start
        identity = multiprocessing.current_process()._identity  # pylint: disable=protected-access
        worker = (identity or (self._pid,))[-1]
        mx.random.seed((self._seed + 1000003 * worker) % (2 ** 31 - 1))


@_document('FasterRCNN', '(img, bbox)')
class FasterRCNNTrainTransform(_RPNTargets, FasterRCNNDefaultTrainTransform):
    """GluonCV's ``FasterRCNNDefaultTrainTransform`` with a pluggable RPN sampler.

    Same constructor and outputs as GluonCV's transform: resize, random flip and
    normalize the image, and (given ``net``) make the RPN training targets
    ``(img, bbox, cls_targets, box_targets, box_masks)`` per feature level, as
    NumPy arrays, for GluonCV's ``FasterRCNNTrainBatchify``. The targets come
    from gluonmine's :class:`~gluonmine.rpn.RPNTargetGenerator` with ``sampler``
    (default ``RPNTargetSampler(num_sample, pos_iou_thresh, neg_iou_thresh,
    pos_ratio)``), hybridized, whose draws use ``mx.random``. In DataLoader worker processes
    each worker reseeds ``mx.random`` once, from a seed drawn from NumPy when
    the transform was built and the worker's number, so workers draw different
    samples (GluonCV's NumPy draws repeat across forked workers). Which worker
    makes which image varies between runs, so by default samples made in
    workers are not reproducible; in the training process (``num_workers=0``) they follow
    ``mx.random.seed``, and with ``device_targets`` they are made in the
    training loop. In worker threads (``thread_pool=True``) the generator's
    calls take turns, Gluon's hybridized blocks not being thread-safe. With
    ``seed_from_numpy=True`` each image's draws are seeded from
    ``numpy.random`` instead, which then must differ from image to image in
    every worker (seeded per image by the dataset, as the recipes'
    ``SeededDraws`` does; GluonCV's flip draws from it too): samples made in
    workers then follow those seeds, whichever worker makes them.

    With ``device_targets=True`` the transform returns ``(img, bbox)`` only and
    the targets are made on the training device by
    :class:`~gluonmine.rpn.RPNTargetGenerator` (see :attr:`target_generator`).

    Parameters
    ----------
{leading_parameters}    flip_p : float, default 0.5
        Probability of a horizontal flip.
{trailing_parameters}    """

    def __init__(self, short=600, max_size=1000, net=None, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225), box_norm=(1., 1., 1., 1.), num_sample=256,
                 pos_iou_thresh=0.7, neg_iou_thresh=0.3, pos_ratio=0.5, flip_p=0.5, ashape=128,
                 multi_stage=False, allowed_border=0, sampler=None, device_targets=False,
                 seed_from_numpy=False):
        generator = self._build_generator(num_sample, pos_iou_thresh, neg_iou_thresh,
                                          pos_ratio, box_norm, allowed_border, sampler)
        _checks.check_number('flip_p', flip_p, 0., 1.)
        super(FasterRCNNTrainTransform, self).__init__(
            short, max_size, None if device_targets else net, mean, std, box_norm, num_sample,
            pos_iou_thresh, neg_iou_thresh, pos_ratio, flip_p, ashape, multi_stage)
        self._init_targets(generator, device_targets, seed_from_numpy)


@_document('MaskRCNN', '(img, bbox, masks)')
class MaskRCNNTrainTransform(_RPNTargets, MaskRCNNDefaultTrainTransform):
    """GluonCV's ``MaskRCNNDefaultTrainTransform`` with a pluggable RPN sampler.

    Same constructor and outputs as GluonCV's transform: resize and randomly
    flip the image, its boxes and its polygons, rasterize one mask an object,
    normalize the image, and (given ``net``) make the RPN training targets:
    ``(img, bbox, cls_targets, box_targets, box_masks, masks)``, for GluonCV's
    ``MaskRCNNTrainBatchify``. The RPN targets are made as
    :class:`FasterRCNNTrainTransform` makes them (gluonmine's
    :class:`~gluonmine.rpn.RPNTargetGenerator` with ``sampler``; different
    draws in each DataLoader worker, or seeded from ``numpy.random`` for each
    image with ``seed_from_numpy``; calls taking turns between threads).
    Mask R-CNN's RCNN stage is Faster R-CNN's: ``net.sampler =
    rcnn_sampler_for(net)`` (or :func:`~gluonmine.rcnn.install_samplers`,
    which returns this transform for a Mask R-CNN).

    With ``device_targets=True`` the transform returns ``(img, bbox, masks)``
    only and the targets are made on the training device by
    :attr:`target_generator`.

    Parameters
    ----------
{leading_parameters}{trailing_parameters}    """

    def __init__(self, short=600, max_size=1000, net=None, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225), box_norm=(1., 1., 1., 1.), num_sample=256,
                 pos_iou_thresh=0.7, neg_iou_thresh=0.3, pos_ratio=0.5, ashape=128,
                 multi_stage=False, allowed_border=0, sampler=None, device_targets=False,
                 seed_from_numpy=False):
        generator = self._build_generator(num_sample, pos_iou_thresh, neg_iou_thresh,
                                          pos_ratio, box_norm, allowed_border, sampler)
        super(MaskRCNNTrainTransform, self).__init__(
            short, max_size, None if device_targets else net, mean, std, box_norm, num_sample,
            pos_iou_thresh, neg_iou_thresh, pos_ratio, ashape, multi_stage)
        self._init_targets(generator, device_targets, seed_from_numpy)
