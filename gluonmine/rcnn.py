"""gluonmine inside a GluonCV Faster R-CNN: both sampling stages in one call.

Shape shorthand: B images, N anchors, M ground truths. The RCNN stage samples
inside the network (``net.sampler``); the RPN stage samples on the data side,
in the training transform or, with device targets, in the training loop.
The OHEM training step (a read-only pass of the RCNN head over all RoIs,
mining, then forward and backward over the selected RoIs only) is
:class:`~gluonmine.rcnn_ohem.OHEMFasterRCNN`, re-exported here.
"""
from gluoncv.model_zoo.rcnn.mask_rcnn.mask_rcnn import MaskRCNN

from .rcnn_ohem import (NEGATIVE_IOU_EDGES, OHEMFasterRCNN, OHEMOutputs, OHEMStats,
                        check_faster_rcnn)
from .rcnn_target import RCNNTargetSampler
from .rpn import RPNTargetGenerator

__all__ = ['install_samplers', 'rcnn_sampler_for', 'OHEMFasterRCNN', 'OHEMOutputs', 'OHEMStats',
           'NEGATIVE_IOU_EDGES']

#: The transform arguments that shape device-side RPN targets (the others are image-side).
DEVICE_TARGET_ARGS = ('num_sample', 'pos_iou_thresh', 'neg_iou_thresh', 'pos_ratio',
                      'box_norm', 'allowed_border')


def rcnn_sampler_for(net, neg_iou_thresh_high=None, neg_iou_thresh_low=0.0):
    """gluonmine's RCNNTargetSampler with the settings of a GluonCV net's own sampler.

    Parameters
    ----------
    net : gluoncv.model_zoo.FasterRCNN
        The network; its ``sampler`` gives images a batch, proposals, slots,
        positive quota and threshold, and the ground-truth bound.
    neg_iou_thresh_high : float, default None
        Negatives have IoU below this; ``None`` means the positive threshold.
    neg_iou_thresh_low : float, default 0.0
        Negatives have IoU at least this (Fast R-CNN's ``bg_lo``).

    Returns
    -------
    RCNNTargetSampler
        Not yet attached to ``net``.
    """
    check_faster_rcnn(net)
    theirs = net.sampler
    # pylint: disable=protected-access
    return RCNNTargetSampler(
        theirs._num_image, theirs._num_proposal, theirs._num_sample, theirs._pos_iou_thresh,
        theirs._max_pos / theirs._num_sample, theirs._max_num_gt,
        neg_iou_thresh_high=neg_iou_thresh_high, neg_iou_thresh_low=neg_iou_thresh_low)


def install_samplers(net, device_targets=False, rcnn_sampler=None, rpn_sampler=None,
                     **transform_args):
    """Put gluonmine's samplers into a GluonCV FasterRCNN; return what the data side needs.

    The RCNN stage: ``net.sampler`` becomes gluonmine's
    :class:`~gluonmine.rcnn_target.RCNNTargetSampler` (``rcnn_sampler``, or
    one built by :func:`rcnn_sampler_for` from the net's own settings; a
    gluonmine sampler already in place is kept). A hybridized net rebuilds its
    graph on the next call. The RPN stage depends on where targets are made:

    - in the DataLoader (default): returns
      :class:`gluonmine.transforms.FasterRCNNTrainTransform`, GluonCV's
      training transform with gluonmine's RPN sampler, built as GluonCV's
      script builds its own (``short``, ``max_size``, ``ashape`` and
      ``multi_stage`` from the net) unless ``transform_args`` say otherwise;
      for a GluonCV ``MaskRCNN``, :class:`gluonmine.transforms.MaskRCNNTrainTransform`
      (GluonCV's Mask R-CNN transform: masks too);
    - on the training device (``device_targets=True``): returns a
      :class:`~gluonmine.rpn.RPNTargetGenerator`, to call in the training loop
      as ``generator(gt_boxes, anchors, im_hw)`` on the net's ``anchors``
      output; the DataLoader then ships images and padded boxes only (e.g.
      ``FasterRCNNTrainTransform(short, max_size, device_targets=True)``).

    In a training script that builds its transform, one line changes::

        from gluonmine.rcnn import install_samplers
        train_transform = install_samplers(net)  # was FasterRCNNDefaultTrainTransform(...)

    (GluonCV 0.10's own script passes the transform class instead: there
    ``net.sampler = rcnn_sampler_for(net)`` and ``FasterRCNNTrainTransform``
    for ``FasterRCNNDefaultTrainTransform``; README.)

    Parameters
    ----------
    net : gluoncv.model_zoo.FasterRCNN
        The network to train (C4 or FPN, any ``per_device_batch_size``; a
        ``MaskRCNN`` too).
    device_targets : bool, default False
        Return the on-device RPN target generator instead of the transform.
    rcnn_sampler : RCNNTargetSampler, default None
        The RCNN sampler to install; ``None`` builds one from the net.
    rpn_sampler : RPNTargetSampler or QuotaSampler, default None
        The RPN sampler; ``None`` builds ``RPNTargetSampler(num_sample,
        pos_iou_thresh, neg_iou_thresh, pos_ratio)`` from ``transform_args``
        (GluonCV's defaults 256, 0.7, 0.3, 0.5).
    **transform_args
        Arguments of the transform (``short``, ``max_size``, ``box_norm``,
        ``num_sample``, ...). With ``device_targets`` only
        those of :data:`DEVICE_TARGET_ARGS` apply.

    Returns
    -------
    FasterRCNNTrainTransform, MaskRCNNTrainTransform or RPNTargetGenerator
        The transform, or with ``device_targets`` the generator (not yet
        hybridized: call ``.hybridize()`` as for any block).
    """
    check_faster_rcnn(net)
    if rcnn_sampler is None:
        rcnn_sampler = net.sampler if isinstance(net.sampler, RCNNTargetSampler) \
            else rcnn_sampler_for(net)
    elif not isinstance(rcnn_sampler, RCNNTargetSampler):
        raise ValueError('rcnn_sampler must be a gluonmine RCNNTargetSampler, got {!r}'.format(
            rcnn_sampler))
    if device_targets:
        return _device_targets(net, rcnn_sampler, rpn_sampler, transform_args)
    args = dict(short=net.short, max_size=net.max_size, ashape=net.ashape,
                multi_stage=net.num_stages > 1)
    args.update(transform_args)
    transform = _transform_class(net)(net=net, sampler=rpn_sampler, **args)
    net.sampler = rcnn_sampler
    return transform


def _transform_class(net):
    """The training transform for ``net``: Mask R-CNN's (with masks) or Faster R-CNN's."""
    # imported here: the transform module pulls in GluonCV's data presets
    from .transforms import FasterRCNNTrainTransform, MaskRCNNTrainTransform
    return MaskRCNNTrainTransform if isinstance(net, MaskRCNN) else FasterRCNNTrainTransform


def _device_targets(net, rcnn_sampler, rpn_sampler, args):
    """The device path of :func:`install_samplers`: check args, install, build the generator."""
    unknown = sorted(set(args) - set(DEVICE_TARGET_ARGS))
    if unknown:
        raise ValueError('{} do(es) not apply with device_targets=True (only {} do): build the '
                         'image transform with FasterRCNNTrainTransform(..., device_targets=True)'
                         .format(', '.join(unknown), ', '.join(DEVICE_TARGET_ARGS)))
    args = dict(args)
    stds = args.pop('box_norm', (1., 1., 1., 1.))
    generator = RPNTargetGenerator(stds=stds, sampler=rpn_sampler, **args)
    net.sampler = rcnn_sampler
    return generator
