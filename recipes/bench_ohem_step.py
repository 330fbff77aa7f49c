"""OHEM training step against the random-sampling step; the multibox loss against GluonCV's.

Faster R-CNN: one training iteration (forward, GluonCV's four losses,
backward, SGD update) of the tiny GluonCV FasterRCNN
(``gluonmine.models.tiny_faster_rcnn``, 2 images of 128x160, 2-5 objects
each, RPN targets made once beforehand as a DataLoader would) with:

- GluonCV's random RCNN sampler (the net as GluonCV builds it), 128 RoIs an image,
- gluonmine's random RCNN sampler (``install_samplers``), 128 and 64 RoIs an image,
- OHEM (``OHEMFasterRCNN``: a read-only pass of the head over every proposal
  and ground truth, HardExampleMiner with NMS 0.7 and 64 RoIs an image, then
  the head on those 64 with gradient): the paper's 128 RoIs per 2 images.

All four hybridized with ``static_alloc``, same batch, same process. The
RPN keeps 300 proposals an image (the tiny net's setting) or 2000 (the
paper's number of RoIs an image; here 60% of them are padding, as the
160x128 image yields fewer boxes).

SSD: ``gluoncv.loss.SSDMultiBoxLoss`` against gluonmine's hybridized
``SSDMultiBoxLoss`` (forward and backward) on 32 images of 8732 anchors and
21 classes, on one context and split over two CPU contexts.

    python recipes/benchmark.py --only ohem_step
"""
import mxnet as mx
import numpy as np
from gluoncv.loss import SSDMultiBoxLoss as GluonCVMultiBoxLoss
from mxnet import autograd, gluon

from _timing import fastest
from train_faster_rcnn import faster_rcnn_losses
from gluonmine.losses import SSDMultiBoxLoss
from gluonmine.models import tiny_faster_rcnn
from gluonmine.ohem import HardExampleMiner
from gluonmine.rcnn import install_samplers
from gluonmine.rcnn_ohem import OHEMFasterRCNN
from gluonmine.rpn import RPNTargetGenerator

NAME = 'ohem_step'
TITLE = 'OHEM training step and multibox loss, per iteration'
HEIGHT, WIDTH, IMAGES, CLASSES = 128, 160, 2, ['a', 'b', 'c']


def detection_batch(seed=0):
    """Images (B, 3, H, W), gt_box (B, 5, 4) padded with -1, gt_label (B, 5, 1)."""
    rng = np.random.RandomState(seed)
    gt_box, gt_label = -np.ones((IMAGES, 5, 4)), -np.ones((IMAGES, 5, 1))
    for b in range(IMAGES):
        n = rng.randint(2, 6)
        wh = rng.uniform(16, 80, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * ([WIDTH, HEIGHT] - wh)
        gt_box[b, :n] = np.concatenate([xy, xy + wh], axis=1)
        gt_label[b, :n, 0] = rng.randint(0, len(CLASSES), n)
    images = rng.uniform(0, 1, (IMAGES, 3, HEIGHT, WIDTH))
    return [mx.nd.array(x) for x in (images, gt_box, gt_label)]


def gluoncv_losses(outputs, rpn_targets):
    """GluonCV train_faster_rcnn.py's four losses, as the recipe computes them: each (B,)."""
    losses = faster_rcnn_losses(outputs, rpn_targets)
    return [losses[name] for name in ('rpn_cls', 'rpn_box', 'rcnn_cls', 'rcnn_box')]


def training_step(model, trainer, batch, rpn_targets):
    """``step()``: forward, losses, backward and update; the last losses in ``step.losses``."""
    images, gt_box, gt_label = batch

    def step():
        with autograd.record():
            losses = gluoncv_losses(model(images, gt_box, gt_label), rpn_targets)
        autograd.backward(losses)
        trainer.step(IMAGES)
        step.losses = losses
    return step


#: the Faster R-CNN steps timed: (name, RCNN sampler, RoIs an image the head trains on)
STEPS = [('GluonCV random', 'gluoncv', 128), ('gluonmine random', 'gluonmine', 128),
         ('gluonmine random', 'gluonmine', 64), ('OHEM', 'ohem', 64)]


def faster_rcnn_steps(post_nms, batch):
    """{(name, RoIs an image): step function} over identical nets (same seed, same batch)."""
    steps, rpn_targets = {}, None
    for name, sampler, rois in STEPS:
        mx.random.seed(0)
        net = tiny_faster_rcnn(CLASSES, per_device_batch_size=IMAGES, num_sample=rois,
                               rpn_train_pre_nms=max(2000, post_nms), rpn_train_post_nms=post_nms)
        net.initialize()
        if sampler == 'gluonmine':
            install_samplers(net, device_targets=True)
        with autograd.train_mode():
            anchors = net(*batch)[7]                 # also completes deferred initialization
        if rpn_targets is None:                      # as a DataLoader would ship them
            im_hw = mx.nd.array([[HEIGHT, WIDTH]] * IMAGES)
            rpn_targets = RPNTargetGenerator()(batch[1], anchors, im_hw)
        model = OHEMFasterRCNN(net, HardExampleMiner(rois)) if sampler == 'ohem' else net
        model.hybridize(static_alloc=True)
        trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 1e-3})
        steps[name, rois] = training_step(model, trainer, batch, rpn_targets)
    return steps


def faster_rcnn_rows(quick):
    rows, batch = [], detection_batch()
    for post_nms in (300, 2000):
        steps = faster_rcnn_steps(post_nms, batch)
        times = fastest(steps, 3 if quick else 10, warmup=1)
        for key, step in steps.items():
            assert all(np.isfinite(l.asnumpy()).all() for l in step.losses), key
        ohem = times['OHEM', 64]
        for (name, rois), t in times.items():
            rows.append(dict(
                model='tiny Faster R-CNN, B=2', setting='{} proposals/image'.format(post_nms),
                step=name, trained_rois=rois, ms=round(t * 1e3, 1),
                ohem_over_this='{:.2f}x'.format(ohem / t)))
    return rows


def multibox_batch(contexts, images=32, anchors=8732, classes=21, seed=0):
    """SSD loss inputs split over contexts: four lists, one array per context."""
    rng = np.random.RandomState(seed)
    per = images // len(contexts)
    parts = []
    for ctx in contexts:
        target = np.where(rng.rand(per, anchors) < 0.01,
                          rng.randint(1, classes, (per, anchors)), 0)
        arrays = [rng.randn(per, anchors, classes), rng.randn(per, anchors, 4), target,
                  rng.randn(per, anchors, 4)]
        parts.append([mx.nd.array(x, ctx=ctx) for x in arrays])
    parts = [list(x) for x in zip(*parts)]
    for x in parts[0] + parts[1]:
        x.attach_grad()
    return parts


def multibox_rows(quick):
    rows = []
    for contexts in ([mx.cpu(0)], [mx.cpu(0), mx.cpu(1)]):
        inputs = multibox_batch(contexts)
        ours = SSDMultiBoxLoss()
        ours.hybridize(static_alloc=True)
        steps = {}
        for name, loss in [('GluonCV', GluonCVMultiBoxLoss()), ('gluonmine', ours)]:
            def step(loss=loss):
                with autograd.record():
                    sums = loss(*inputs)[0]
                autograd.backward(sums)
            steps[name] = step
        times = fastest(steps, 2 if quick else 5, warmup=1)
        want, got = GluonCVMultiBoxLoss()(*inputs)[0], ours(*inputs)[0]
        for a, b in zip(want, got):
            np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-4)
        for name, t in times.items():
            rows.append(dict(model='SSD loss, B=32, 8732 anchors, 21 classes',
                             setting='{} context(s)'.format(len(contexts)),
                             step='{} SSDMultiBoxLoss'.format(name), ms=round(t * 1e3, 1),
                             speedup_vs_gluoncv='{:.2f}x'.format(times['GluonCV'] / t)))
    return rows


def run(quick):
    rows = faster_rcnn_rows(quick) + multibox_rows(quick)
    columns = ['model', 'setting', 'step', 'trained_rois', 'ms', 'ohem_over_this',
               'speedup_vs_gluoncv']
    notes = ['Faster R-CNN: one iteration (forward, GluonCV\'s losses, backward, SGD step), '
             'hybridized with static_alloc, best of 5 interleaved rounds. trained_rois: RoIs an '
             'image the head trains on (random samplers: num_sample; OHEM: the 64 it mines from '
             'every proposal and ground truth). ohem_over_this: OHEM time over that step\'s '
             '(the paper paid about 1.75x, mmdetection about 1.08x). '
             'SSD: forward and backward of the loss alone, equal losses checked.']
    return columns, rows, notes


if __name__ == '__main__':
    print(run(quick=False))
