"""Tiny GluonCV detectors: GluonCV's own FasterRCNN (C4 and FPN), MaskRCNN and SSD, small.

They need no pretrained weights (nothing can be downloaded), build in a second
and run a training step on the CPU in well under a second, so tests and the
offline recipes can train real GluonCV detectors end to end. Swap in a real
backbone (``gluoncv.model_zoo.get_model``) for real training.
"""
from gluoncv.model_zoo.rcnn.faster_rcnn.faster_rcnn import FasterRCNN, custom_faster_rcnn_fpn
from gluoncv.model_zoo.rcnn.mask_rcnn.mask_rcnn import MaskRCNN
from gluoncv.model_zoo.ssd.ssd import SSD
from mxnet.gluon import nn

from . import _checks


def _conv(channels, stride):
    block = nn.HybridSequential()
    block.add(nn.Conv2D(channels, 3, stride, 1, use_bias=False), nn.BatchNorm(),
              nn.Activation('relu'))
    return block


def _backbone(widths, prefix):
    """Stride-2 3x3 conv + BN + ReLU stages, one per width: total stride 2 ** len(widths)."""
    features = nn.HybridSequential(prefix=prefix)
    with features.name_scope():
        for width in widths:
            features.add(_conv(width, 2))
    return features


def tiny_faster_rcnn(classes, per_device_batch_size=1, short=128, max_size=224,
                     channels=(16, 32, 48, 64), rpn_channel=64, num_sample=128,
                     rpn_train_pre_nms=2000, rpn_train_post_nms=300, max_num_gt=50,
                     network=FasterRCNN, **kwargs):
    """A C4-style Faster R-CNN (stride 8) built with GluonCV's ``FasterRCNN`` class.

    Parameters
    ----------
    classes : list of str
        Foreground class names.
    per_device_batch_size : int, default 1
        Images per device in training (GluonCV's ``per_device_batch_size``).
    short : int, default 128
        Training/test image short side.
    max_size : int, default 224
        Longest image side.
    channels : tuple of 4 int, default (16, 32, 48, 64)
        Widths of the four stride-2 backbone stages.
    rpn_channel : int, default 64
        Channels of the RPN head.
    num_sample : int, default 128
        RoIs sampled per image for the RCNN head.
    rpn_train_pre_nms : int, default 2000
        Proposals kept before NMS in training.
    rpn_train_post_nms : int, default 300
        Proposals kept after NMS in training (the RCNN sampler's input).
    max_num_gt : int, default 50
        Largest number of ground truths per image the RCNN sampler expects.
    network : class, default gluoncv FasterRCNN
        The class built: ``FasterRCNN`` or a subclass (``MaskRCNN``, see
        :func:`tiny_mask_rcnn`).
    **kwargs
        Passed on to ``network`` (anchor scales, NMS settings, ...).

    Returns
    -------
    gluoncv.model_zoo.FasterRCNN
        Not initialized; call ``net.initialize()``.
    """
    _checks.check_int('per_device_batch_size', per_device_batch_size, low=1)
    if len(channels) != 4:
        raise ValueError('channels must hold 4 widths, got {!r}'.format(channels))
    features = _backbone(channels[:3], 'features_')
    top_features = nn.HybridSequential(prefix='top_')
    with top_features.name_scope():
        top_features.add(_conv(channels[3], 1))
    defaults = dict(scales=(2, 4, 8), ratios=(0.5, 1, 2), roi_size=(7, 7), strides=8,
                    clip=4.14, rpn_test_pre_nms=1000, rpn_test_post_nms=100, rpn_min_size=4,
                    alloc_size=(128, 128))
    defaults.update(kwargs)
    return network(features, top_features, classes, short=short, max_size=max_size,
                   rpn_channel=rpn_channel, per_device_batch_size=per_device_batch_size,
                   num_sample=num_sample, rpn_train_pre_nms=rpn_train_pre_nms,
                   rpn_train_post_nms=rpn_train_post_nms, max_num_gt=max_num_gt,
                   **defaults)


class _TrainedBatchNorm(nn.BatchNorm):
    """``nn.BatchNorm`` under another name: GluonCV freezes the normalisation of a
    network built with ``nn.BatchNorm`` itself (for pretrained weights), not this."""


def tiny_faster_rcnn_fpn(classes, per_device_batch_size=1, short=128, max_size=224,
                         num_filters=16, rpn_train_pre_nms=1000, rpn_train_post_nms=200,
                         **kwargs):
    """A feature-pyramid Faster R-CNN: GluonCV's ``custom_faster_rcnn_fpn`` on a ResNet-18.

    Five levels, strides 4 to 64, one anchor size a level: GluonCV's FPN preset,
    32 to 512 px (scales 2 to 32 times a 16 px base; ``scales=`` changes them).
    Its anchors come as one array a level, so it exercises every multi-level
    path. The ResNet-18 (v1b) is randomly initialised and trains
    whole, batch normalisation included: GluonCV freezes ``nn.BatchNorm`` and the
    stem and first stage, as suits pretrained weights (``norm_layer=nn.BatchNorm``
    gives that: with those layers random and frozen, the recipe's 12 epochs on the
    synthetic data reached mAP 0.48, against 0.67 trained whole).

    RoIs are pooled with ``ROIPooling`` (``roi_mode='pool'``), not GluonCV's
    default ``ROIAlign``: MXNet's CPU ``ROIAlign`` leaves the rows of RoIs
    masked out of a level unwritten, so on the CPU the summed levels would
    hold whatever that memory held (README, "Things we found in the stack").
    Pass ``roi_mode='align'`` for GluonCV's behaviour.

    Parameters
    ----------
    classes : list of str
        Foreground class names.
    per_device_batch_size : int, default 1
        Images per device in training (GluonCV's ``per_device_batch_size``).
    short : int, default 128
        Training/test image short side.
    max_size : int, default 224
        Longest image side.
    num_filters : int, default 16
        Channels of the pyramid's outputs, the RPN and the box head's convolutions
        (twice this in its dense layer).
    rpn_train_pre_nms : int, default 1000
        Proposals kept before NMS in training.
    rpn_train_post_nms : int, default 200
        Proposals kept after NMS in training (the RCNN sampler's input).
    **kwargs
        Passed on to ``custom_faster_rcnn_fpn`` (``num_sample``, NMS settings, ...).

    Returns
    -------
    gluoncv.model_zoo.FasterRCNN
        Not initialized; call ``net.initialize()``.
    """
    _checks.check_int('per_device_batch_size', per_device_batch_size, low=1)
    _checks.check_int('num_filters', num_filters, low=1)
    defaults = dict(norm_layer=_TrainedBatchNorm, norm_kwargs={},
                    num_box_head_conv=1, num_box_head_conv_filters=num_filters,
                    num_box_head_dense_filters=2 * num_filters, rpn_channel=num_filters,
                    min_stage=2, max_stage=6, strides=(4, 8, 16, 32, 64),
                    scales=(2, 4, 8, 16, 32), clip=4.14, roi_mode='pool')
    defaults.update(kwargs)
    return custom_faster_rcnn_fpn(
        classes, pretrained_base=False, base_network_name='resnet18_v1b',
        num_fpn_filters=num_filters, short=short, max_size=max_size,
        per_device_batch_size=per_device_batch_size, rpn_train_pre_nms=rpn_train_pre_nms,
        rpn_train_post_nms=rpn_train_post_nms, **defaults)


def tiny_mask_rcnn(classes, mask_channels=16, target_roi_scale=2, **kwargs):
    """:func:`tiny_faster_rcnn`'s network as GluonCV's ``MaskRCNN``: a mask head added.

    Parameters
    ----------
    classes : list of str
        Foreground class names.
    mask_channels : int, default 16
        Channels of the mask head.
    target_roi_scale : int, default 2
        Mask targets are the RoI size times this: the mask head's output size
        (its deconvolution doubles the pooled size), as in GluonCV's models.
    **kwargs
        Passed on to :func:`tiny_faster_rcnn` (``per_device_batch_size``, ...).

    Returns
    -------
    gluoncv.model_zoo.MaskRCNN
        Not initialized; call ``net.initialize()``.
    """
    return tiny_faster_rcnn(classes, network=MaskRCNN, mask_channels=mask_channels,
                            target_roi_scale=target_roi_scale, **kwargs)


def _feature_cells(size, count):
    """Cells across each of ``tiny_ssd``'s ``count`` feature maps for a ``size`` px input:
    its stem halves three times, each later stage once (a 3x3 stride-2 convolution with
    padding 1 gives ceil(n / 2) of n)."""
    cells = [-(-size // 8)]
    while len(cells) < count:
        cells.append(-(-cells[-1] // 2))
    return cells


def tiny_ssd(classes, base_size=128, channels=(16, 32, 64, 64, 64, 64), **kwargs):
    """A small SSD built with GluonCV's ``SSD`` class: six feature maps, strides 8 to 256.

    Anchors are laid out as GluonCV's presets lay them: a map of ``n`` x ``n`` cells
    over the ``base_size`` x ``base_size`` input has step ``base_size / n``, so every
    map's anchors are centred on the image (at 128 px the maps are 16, 8, 4, 2, 1 and
    1 cells wide, steps 8 to 128).

    Parameters
    ----------
    classes : list of str
        Foreground class names.
    base_size : int, default 128
        Input size the anchors are laid out for.
    channels : tuple of 6 int, default (16, 32, 64, 64, 64, 64)
        Widths of the backbone stages; the last four are SSD's extra layers.
    **kwargs
        Passed on to ``SSD`` (``nms_thresh``, ``post_nms``, ...).

    Returns
    -------
    gluoncv.model_zoo.SSD
        Not initialized; call ``net.initialize()``.
    """
    if len(channels) != 6:
        raise ValueError('channels must hold 6 widths, got {!r}'.format(channels))

    class _Features(nn.HybridBlock):
        """Stride-8 stem then five stride-2 stages; returns six feature maps."""

        def __init__(self, **block_kwargs):
            super(_Features, self).__init__(prefix='features_')
            with self.name_scope():
                self.stem = _backbone(channels[:1] * 3, 'stem_')
                self.stages = nn.HybridSequential()
                for width in channels[1:]:
                    self.stages.add(_conv(width, 2))

        def hybrid_forward(self, F, x):  # pylint: disable=arguments-differ
            x = self.stem(x)
            outputs = [x]
            for stage in self.stages:
                x = stage(x)
                outputs.append(x)
            return outputs

    sizes = [base_size * s for s in (0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05)]
    ratios = [[1, 2, 0.5]] * 2 + [[1, 2, 0.5, 3, 1. / 3]] * 4
    steps = [base_size / cells for cells in _feature_cells(base_size, 6)]
    return SSD(None, base_size, lambda **_: _Features(), None, sizes, ratios, steps,
               classes, pretrained=False, **kwargs)
