#!/usr/bin/env python
"""Look at what each sampler or miner selects on training images: anchors and RoIs.

For every image (resized as the network reads it, not flipped) one row of panels,
ground truths in yellow, positives in green, negatives in red. For a Faster
R-CNN (``train_faster_rcnn.py``):

1. GluonCV's RPN sampler (``RPNTargetGenerator`` of GluonCV 0.10): the anchors it
   labels, 256 at most (negatives as dots, at their centres);
2. gluonmine's ``RPNTargetGenerator`` on the same anchors;
3. GluonCV's ``RCNNTargetSampler`` over the network's proposals;
4. gluonmine's ``RCNNTargetSampler`` (random within quotas) over the same;
5. OHEM: the RoIs ``OHEMFasterRCNN`` trains on (hardest by loss after NMS).

For an SSD (``train_ssd.py``), the anchors each ``--miner`` trains on, from the
same predictions: GluonCV's hard negative mining, gluonmine's, OHEM's (NMS among
the hard negatives) and random negatives.

With ``--run PREFIX`` the network is a trained run's (its proposals and losses
are what training sees); without it an untrained tiny network's (``--recipe``),
whose proposals and losses are random; the RPN panels do not depend on the
weights. Writes OUTPUT.png and OUTPUT.json: per image and panel the positives,
negatives, and the objects that got no positive at all.

    python recipes/show_samples.py --run runs/faster_rcnn
    python recipes/show_samples.py --run runs/ssd --images 1 2
    python recipes/show_samples.py --images 3 14 15 --seed 1
"""
import argparse
import os

import mxnet as mx
import numpy as np
from gluoncv.data.transforms.presets.rcnn import FasterRCNNDefaultValTransform
from gluoncv.model_zoo.rcnn.rpn.rpn_target import RPNTargetGenerator as GluonCVRPNTargets
from mxnet import autograd

import arguments
import checkpoint
import entry
import loaders
import report
import selection_stats
import train_faster_rcnn
import train_ssd
from gluonmine.boxes import join_levels
from gluonmine.rcnn import OHEMFasterRCNN, rcnn_sampler_for
from gluonmine.rpn import RPNTargetGenerator

RECIPES = {'train_faster_rcnn': train_faster_rcnn, 'train_ssd': train_ssd}
PANELS = {'train_faster_rcnn': ('GluonCV RPN', 'gluonmine RPN', 'GluonCV RCNN',
                                'gluonmine RCNN', 'OHEM RCNN'),
          'train_ssd': train_ssd.MINERS}
# image normalisation of GluonCV's transforms, undone for display
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add = parser.add_argument
    add('--run', default=None, type=entry.RUN,
        help="a train_faster_rcnn.py or train_ssd.py run's --save-prefix: its network and "
             'weights (default: an untrained tiny network)')
    add('--recipe', choices=('faster_rcnn', 'ssd'), default='faster_rcnn',
        help="without --run, whose network (default: %(default)s)")
    add('--dataset', choices=loaders.DATASETS, default=None,
        help="whose training images (default: the run's, else synthetic)")
    add('--dataset-root', default=None,
        help="where it is (default: the run's, else %s)" % loaders.SYNTHETIC_ROOT)
    add('--images', type=int, nargs='+', default=[0, 1, 2],
        help='indices of training images (default: %(default)s)')
    add('--seed', type=int, default=0, help='seed of the random samplers (default: %(default)s)')
    add('--output', default=None, type=entry.prefix_of('.png', '.json'),
        help='write OUTPUT.png and OUTPUT.json (default: PREFIX-samples or runs/samples)')
    args = parser.parse_args(argv)
    arguments.check_output(parser, args.output, args.run)
    return args


def build(args):
    """(recipe name, its flags, network (weights loaded with ``--run``), image transform,
    training images)."""
    run = report.read_run(args.run, RECIPES) if args.run else None
    recipe = run['recipe'] if run else 'train_' + args.recipe
    flags = report.run_flags(run, vars(RECIPES[recipe].parse_args([])), dataset=args.dataset,
                             dataset_root=args.dataset_root)
    flags = argparse.Namespace(**dict(flags, batch_size=1, num_train_images=None))
    train_set, _, classes = loaders.build_datasets(flags)
    if run:
        report.check_run_classes(run, classes, flags.dataset)
    bad = [i for i in args.images if not 0 <= i < len(train_set)]
    if bad:
        raise SystemExit('--images {}: the training set has images 0 to {}'.format(
            bad, len(train_set) - 1))
    if recipe == 'train_ssd':
        net, size = train_ssd.build_net(flags, classes, [mx.cpu()])
        transform = train_ssd.ValTransform(size)
    else:
        net = train_faster_rcnn.build_net(flags, classes, [mx.cpu()])
        transform = FasterRCNNDefaultValTransform(train_faster_rcnn.test_short(net),
                                                  net.max_size)
    if run:
        checkpoint.load_parameters(net, args.run + '.params', mx.cpu())
    return recipe, flags, net, transform, train_set


def faster_rcnn_selections(net, images, seed, flags):
    """Panel name -> (boxes (K, 4), samples (K,) +1/-1/0) of each image (index -> (image,
    label)), NumPy: the RoI panels over the net's proposals, the RPN panels over its anchors."""
    chosen, anchors = {index: {} for index in images}, {}
    for name, model in rcnn_models(net):
        for index, (image, label) in images.items():
            rois, samples, anchors[index] = rcnn_selection(model, image, label, seed)
            chosen[index][name] = (rois, samples)
    for index, (image, label) in images.items():
        chosen[index].update(rpn_selections(image, label, anchors[index], seed, flags))
    return chosen


def ssd_selections(net, images, seed, flags):
    """As :func:`faster_rcnn_selections`, for an SSD: the anchors each miner trains on, from
    one training-mode forward an image."""
    generator, chosen = train_ssd.target_generator(), {}
    miners = {name: train_ssd.build_miner(argparse.Namespace(**dict(vars(flags), miner=name)))
              for name in train_ssd.MINERS}
    for index, (image, label) in images.items():
        with autograd.train_mode():
            cls_pred, box_pred, anchors = net(image.expand_dims(0))
        cls_target, box_target = train_ssd.ssd_targets(generator, anchors, label.expand_dims(0))
        corners = train_ssd.anchor_corners(anchors)                         # (N, 4)
        chosen[index] = {}
        for name, miner in miners.items():
            mx.random.seed(seed)
            samples = train_ssd.mined_samples(miner, cls_pred, box_pred, cls_target,
                                              box_target, anchors)
            chosen[index][name] = (corners, samples[0].asnumpy())
    return chosen


def rcnn_models(net):
    """(panel name, model) of the RCNN panels, in an order Gluon allows: GluonCV's sampler,
    then gluonmine's put in its place (which cannot be undone), then OHEM around it."""
    yield 'GluonCV RCNN', net
    net.sampler = rcnn_sampler_for(net)
    yield 'gluonmine RCNN', net
    yield 'OHEM RCNN', OHEMFasterRCNN(net)


def rcnn_selection(model, image, label, seed):
    """The RoIs (K, 4) and samples (K,) a model trains on for one image, and the anchors.

    image: (3, H, W) normalised, label (M, 6) at that size. Returns NumPy
    boxes and samples (+1/-1/0), and the anchors (1, N, 4) NDArray (an FPN's
    levels, (1, N_l, 4) each, joined in level order as GluonCV's transform does).
    """
    mx.random.seed(seed)
    with autograd.train_mode():
        outputs = model(image.expand_dims(0), label[:, :4].expand_dims(0),
                        label[:, 4:5].expand_dims(0))
    anchors = outputs[7]
    if isinstance(anchors, (list, tuple)):
        anchors = join_levels(mx.nd, anchors)
    return outputs[2][0].asnumpy(), outputs[3][0].asnumpy(), anchors


def rpn_selections(image, label, anchors, seed, flags):
    """GluonCV's and gluonmine's RPN samples over the anchors (1, N, 4) of one image: panel
    name -> (anchors (N, 4), samples (N,) +1/-1/0), NumPy. gluonmine's sampler follows the
    run's ``flags`` (its RPN rule)."""
    height, width = image.shape[1:]
    np.random.seed(seed)
    mx.random.seed(seed)
    gluoncv = GluonCVRPNTargets(num_sample=train_faster_rcnn.RPN_NUM_SAMPLE)(
        label[:, :4], anchors[0], width, height)[0]                          # NumPy (N,)
    gluonmine = RPNTargetGenerator(sampler=train_faster_rcnn.rpn_sampler(flags))(
        label[:, :4].expand_dims(0), anchors, mx.nd.array([[height, width]]))[0][0].asnumpy()
    return {name: (anchors[0].asnumpy(), _samples(np.ravel(target)))
            for name, target in (('GluonCV RPN', gluoncv), ('gluonmine RPN', gluonmine))}


def _samples(rpn_target):
    """GluonCV's RPN targets (+1 positive, 0 negative, -1 ignore) as samples +1 / -1 / 0."""
    return np.where(rpn_target > 0, 1., np.where(rpn_target == 0, -1., 0.))


def counts(boxes, samples, gt):
    """positives, negatives, and the objects no positive box overlaps best (gt (M, 4))."""
    positive = boxes[samples > 0.5]
    valid = len(selection_stats.valid_boxes(gt))
    matched = (set(selection_stats.iou_matrix(positive, gt).argmax(axis=1).tolist()) if valid
               else set())
    return {'positives': int((samples > 0.5).sum()), 'negatives': int((samples < -0.5).sum()),
            'objects': valid, 'objects_without_positive': valid - len(matched)}


SELECTIONS = {'train_faster_rcnn': faster_rcnn_selections, 'train_ssd': ssd_selections}


def main(argv=None):
    args = parse_args(argv)
    output = args.output or ('{}-samples'.format(args.run) if args.run
                             else os.path.join('runs', 'samples'))
    recipe, flags, net, transform, train_set = build(args)
    images = {}
    for index in args.images:
        image, label, _ = transform(*train_set[index])
        label = mx.nd.array(label) if len(label) else mx.nd.full((1, 6), -1)
        images[index] = (image, label.astype('float32'))
    chosen = SELECTIONS[recipe](net, images, args.seed, flags)
    report = {'run': args.run, 'recipe': recipe, 'seed': args.seed, 'images': {}}
    for index, (image, label) in images.items():
        gt = label[:, :4].asnumpy()
        report['images'][index] = {name: counts(*chosen[index][name], gt)
                                   for name in PANELS[recipe]}
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    entry.write_json(output + '.json', report)
    plot(output + '.png', images, chosen, report)
    print('wrote {0}.png and {0}.json'.format(output))
    return report


def plot(path, images, chosen, report):
    """One row of panels an image: ``images`` index -> (image, label), ``chosen`` index ->
    panel name -> (boxes, samples)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = PANELS[report['recipe']]
    figure, axes = plt.subplots(len(images), len(panels), squeeze=False,
                                figsize=(3.4 * len(panels), 3.6 * len(images)))
    for (index, (image, label)), row in zip(images.items(), axes):
        picture = np.clip(image.asnumpy().transpose(1, 2, 0) * STD + MEAN, 0, 1)
        gt = label[:, :4].asnumpy()
        for name, ax in zip(panels, row):
            ax.imshow(picture)
            boxes, samples = chosen[index][name]
            _draw(ax, boxes[samples < -0.5], 'red', dots=name.endswith('RPN'), alpha=0.45)
            _draw(ax, boxes[samples > 0.5], 'lime')
            _draw(ax, selection_stats.valid_boxes(gt), 'yellow')
            numbers = report['images'][index][name]
            ax.set_title('image {}, {}\n{} pos, {} neg; {} of {} objects without'.format(
                index, name, numbers['positives'], numbers['negatives'],
                numbers['objects_without_positive'], numbers['objects']), fontsize=8)
            ax.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _draw(ax, boxes, colour, dots=False, alpha=1.):
    """Boxes (K, 4) as rectangles, or with ``dots`` as dots at their centres."""
    if dots:
        ax.plot((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, '.',
                color=colour, markersize=2, alpha=alpha)
        return
    import matplotlib.patches as patches
    for x1, y1, x2, y2 in boxes:
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colour,
                                       linewidth=0.8, alpha=alpha))


if __name__ == '__main__':
    entry.run_script(main, 'interrupted before the figure was written')
