"""RPN targets: GluonCV's per-image RPNTargetGenerator against gluonmine's batched one.

GluonCV runs as its training transform uses it: one image per call (IoU,
border rule, sampling, encoding), with NumPy in the middle. gluonmine runs one
hybridized call for a batch of 8 images. Anchors come from GluonCV's own
``RPNAnchorGenerator`` for a 600x1000 image: a C4 layout (stride 16, 15
anchors a position) and an FPN layout (strides 4-64, 3 anchors a position).
"""
import mxnet as mx
import numpy as np
from gluoncv.model_zoo.rcnn.rpn.anchor import RPNAnchorGenerator
from gluoncv.model_zoo.rcnn.rpn.rpn_target import RPNTargetGenerator as GluonCVGenerator
from gluoncv.model_zoo.rcnn.rpn.rpn_target import RPNTargetSampler as GluonCVSampler

from _timing import fastest, hybridized, speed_columns
from gluonmine import RPNTargetGenerator, RPNTargetSampler

NAME = 'rpn'
TITLE = 'RPN target generation and sampling, per image'
HEIGHT, WIDTH, BATCH = 600, 1000, 8
LAYOUTS = {
    # name: [(stride, scales)], ratios (0.5, 1, 2), number of ground truths
    'C4': ([(16, (2, 4, 8, 16, 32))], 10),
    'FPN': ([(4, (2,)), (8, (4,)), (16, (8,)), (32, (16,)), (64, (32,))], 50),
}


def anchors_for(levels):
    """GluonCV's RPN anchors of a HEIGHT x WIDTH image, all levels: (N, 4)."""
    out = []
    for stride, scales in levels:
        generator = RPNAnchorGenerator(stride, 16, (0.5, 1, 2), scales, (160, 256))
        generator.initialize()
        height, width = -(-HEIGHT // stride), -(-WIDTH // stride)
        feature = mx.nd.zeros((1, 1, height, width))
        out.append(generator(feature).reshape((-1, 4)))
    return mx.nd.concat(*out, dim=0)


def ground_truths(num, seed=0):
    """BATCH images of num boxes, 24-400 px a side, inside the image: (BATCH, num, 4)."""
    rng = np.random.RandomState(seed)
    size = rng.uniform(24, 400, size=(BATCH, num, 2))
    corner = rng.uniform(0, 1, size=(BATCH, num, 2)) * ([WIDTH, HEIGHT] - size)
    return mx.nd.array(np.concatenate([corner, corner + size], axis=-1))


def border_ious(anchors, gt):
    """GluonCV's IoU: -1 for anchors crossing the image, (BATCH, N, M)."""
    ious = mx.nd.contrib.box_iou(anchors, gt).transpose((1, 0, 2))
    a = anchors.asnumpy()
    outside = (a[:, 0] < 0) | (a[:, 1] < 0) | (a[:, 2] >= WIDTH) | (a[:, 3] >= HEIGHT)
    return mx.nd.array(np.where(outside[None, :, None], -1, ious.asnumpy()))


def check_sampler(sampler, ious, per_image):
    """gluonmine's sampler agrees with GluonCV's, or AssertionError.

    sampler: gluonmine's RPNTargetSampler; ious: (BATCH, N, M) NDArray;
    per_image: the same as BATCH NumPy (N, M) arrays. Its matches, and its
    labels before subsampling under GluonCV's clobbering rule
    (``clobber_positives=True``), equal GluonCV's for every anchor.
    """
    labels = RPNTargetSampler(clobber_positives=True).label(mx.nd, ious).asnumpy()
    matches = sampler(ious)[1].asnumpy()
    everything = GluonCVSampler(10 ** 7, 0.7, 0.3, 0.5)    # num_sample above N: no subsampling
    for b, image in enumerate(per_image):
        want_labels, want_matches = everything(image)
        np.testing.assert_array_equal(labels[b], want_labels)
        np.testing.assert_array_equal(matches[b], want_matches)


def run(quick):
    repeat, rounds = (2, 1) if quick else (3, 3)
    rows = []
    for layout, (levels, num_gt) in LAYOUTS.items():
        anchors, gt = anchors_for(levels), ground_truths(num_gt)
        im_hw = mx.nd.array([[HEIGHT, WIDTH]] * BATCH)

        theirs, ours = GluonCVGenerator(), hybridized(RPNTargetGenerator())
        t_theirs, t_ours = fastest(
            [lambda: [theirs(gt[b], anchors, WIDTH, HEIGHT) for b in range(BATCH)],
             lambda: ours(gt, anchors, im_hw)], repeat, rounds)
        rows.append(dict(layout=layout, step='generator: IoU, border, sampling, encoding',
                         anchors=anchors.shape[0], gts=num_gt,
                         **speed_columns(t_theirs / BATCH, t_ours / BATCH)))

        ious = border_ious(anchors, gt)
        per_image = [ious[b].asnumpy() for b in range(BATCH)]
        theirs, ours = GluonCVSampler(256, 0.7, 0.3, 0.5), hybridized(RPNTargetSampler())
        check_sampler(ours, ious, per_image)
        t_theirs, t_ours = fastest([lambda: [theirs(i) for i in per_image], lambda: ours(ious)],
                                   repeat, rounds)
        rows.append(dict(layout=layout, step='sampler alone, given the IoU matrix',
                         anchors=anchors.shape[0], gts=num_gt,
                         **speed_columns(t_theirs / BATCH, t_ours / BATCH)))
    columns = ['layout', 'step', 'anchors', 'gts', 'gluoncv_ms', 'gluonmine_ms', 'speedup']
    notes = ['Per image. GluonCV: one image per call, as its transform runs it. gluonmine: '
             'a hybridized batch of {} divided by {}; its sampler also returns matches for '
             'every anchor, which the generator skips. Fastest of {} interleaved rounds of {} '
             'calls. Checked first: the samplers\' matches and labels before subsampling '
             '(gluonmine with clobber_positives=True, GluonCV\'s rule) are equal.'
             .format(BATCH, BATCH, rounds, repeat)]
    return columns, rows, notes
