#!/usr/bin/env python
"""Export detectors and every gluonmine block to symbol + params files; check them with MXNet only.

Each block is hybridized, run once on small example inputs and exported with
``HybridBlock.export`` to ``OUTPUT/NAME-symbol.json`` and
``OUTPUT/NAME-0000.params`` (the params file only when the block has
parameters). ``OUTPUT/manifest.json`` lists, for each, the class and its
settings, the MXNet input names to pass to ``SymbolBlock.imports`` with each
input's meaning, shape and dtype, the outputs' shapes, and whether it draws
random numbers; ``OUTPUT/NAME-check.npz`` holds the example inputs and the
outputs the original block gave (random blocks after ``mx.random.seed(seed)``).

    python recipes/export.py                                 # the samplers, miners and losses
    python recipes/export.py --params runs/ssd.params        # and a trained network
    python recipes/export.py --fresh ssd faster_rcnn         # and freshly initialised ones
    python recipes/export.py --check runs/export             # reload with MXNet only, compare

``--check`` imports neither gluonmine nor GluonCV: it reloads every exported
file with ``mx.gluon.SymbolBlock.imports``, feeds the saved inputs (after the
same seed) and compares the outputs with the saved ones.
"""
import argparse
import collections
import json
import os
import sys
import warnings

import mxnet as mx
import numpy as np

import checkpoint
from entry import RUN, run_script

FORMAT_VERSION = 1
DETECTORS = ('faster_rcnn', 'ssd')
# the recipe that wrote a params file (its metrics JSON's 'recipe') -> detector
RECIPES = {'train_faster_rcnn': 'faster_rcnn', 'train_ssd': 'ssd'}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--params', nargs='*', default=[], type=RUN, metavar='RUN',
                        help='runs of train_faster_rcnn.py or train_ssd.py, each its '
                             '--save-prefix PREFIX (or PREFIX.params, PREFIX.json): '
                             'PREFIX.params holds the weights, PREFIX.json names the recipe, '
                             'network and classes (default: none)')
    parser.add_argument('--fresh', nargs='*', choices=DETECTORS, default=[],
                        help='also export these tiny detectors freshly initialised (seeded), '
                             'for the synthetic dataset\'s classes (default: none)')
    parser.add_argument('--output', default=os.path.join('runs', 'export'),
                        help='folder for the exported files and manifest.json '
                             '(default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the example inputs, fresh weights and mx.random '
                             '(default: %(default)s)')
    parser.add_argument('--check', metavar='FOLDER', default=None,
                        help='instead of exporting: reload everything FOLDER/manifest.json '
                             'lists with MXNet only and compare with the saved outputs')
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- export

def example_boxes(rng, shape, size=64., min_side=4., max_side=32.):
    """Random corner boxes (..., 4) inside a size x size image, float32."""
    xy = rng.uniform(0, size - max_side, size=tuple(shape) + (2,))
    wh = rng.uniform(min_side, max_side, size=tuple(shape) + (2,))
    return np.concatenate([xy, xy + wh], axis=-1).astype('float32')


def selection_examples(rng):
    """{name: (block factory, [(argument name, numpy input)], random?)} for every gluonmine block.

    Two images, a few dozen candidates, three ground truths of which the
    second image's last is a padding row (-1), so that exports stay small and fast.
    """
    # pylint: disable=import-outside-toplevel
    from gluonmine.boxes import per_image_iou
    from gluonmine.hard_negative import HardNegativeMiner
    from gluonmine.losses import MultiBoxLoss, RCNNHardExampleLoss
    from gluonmine.ohem import HardExampleMiner, OHEMSampler
    from gluonmine.quota import QuotaSampler
    from gluonmine.rcnn_target import RCNNTargetSampler
    from gluonmine.rpn import RPNTargetGenerator, RPNTargetSampler

    gt = example_boxes(rng, (2, 3))                                         # (2, 3, 4)
    gt[1, 2] = -1
    anchors = example_boxes(rng, (2, 64))                                   # (2, 64, 4)
    anchors[:, :8] = gt[:, :1] + rng.uniform(-2, 2, size=(2, 8, 4)).astype('float32')
    ious = per_image_iou(mx.nd, mx.nd.array(anchors), mx.nd.array(gt)).asnumpy()  # (2, 64, 3)
    ious[0, -4:] = -1                                                       # unusable anchors
    losses = rng.exponential(size=(2, 64)).astype('float32')                # (2, 64)
    samples = np.where(ious.max(axis=-1) >= 0.5, 1, -1).astype('float32')  # (2, 64)
    logits = rng.normal(size=(2, 64, 4)).astype('float32')                  # (2, 64, C + 1)
    cls_target = np.where(samples > 0, rng.integers(1, 4, size=(2, 64)), 0).astype('float32')
    box_target = rng.normal(size=(2, 64, 4)).astype('float32') * (samples[..., None] > 0)
    per_class = rng.normal(size=(2, 64, 3, 4)).astype('float32')            # (2, 64, C, 4)
    mask = (cls_target[..., None, None] == np.arange(1, 4)[:, None]) * np.ones(4)
    return {
        'rpn_target_sampler': (lambda: RPNTargetSampler(num_sample=32),
                               [('ious', ious)], True),
        'rpn_target_generator': (lambda: RPNTargetGenerator(num_sample=32),
                                 [('gt_boxes', gt), ('anchors', anchors[0]),
                                  ('im_hw', np.array([[64, 64], [60, 64]], 'float32'))], True),
        'quota_sampler': (lambda: QuotaSampler(num_sample=16), [('ious', ious)], True),
        'rcnn_target_sampler': (lambda: RCNNTargetSampler(2, 64, 16, 0.5, 0.25, 3),
                                [('rois', anchors), ('scores', losses[..., None]),
                                 ('gt_boxes', gt)], True),
        'hard_example_miner': (lambda: HardExampleMiner(num_hard_examples=16),
                               [('cls_losses', losses), ('loc_losses', losses[::-1].copy()),
                                ('boxes', anchors), ('samples', samples)], False),
        'hard_negative_miner': (lambda: HardNegativeMiner(3),
                                [('losses', losses), ('samples', samples)], False),
        'ohem_sampler': (lambda: OHEMSampler(3),
                         [('x', np.where(samples > 0, ious.argmax(-1), -1).astype('float32')),
                          ('logits', logits), ('ious', ious)], False),
        'multibox_loss': (MultiBoxLoss,
                          [('cls_pred', logits), ('box_pred', box_target[::-1].copy()),
                           ('cls_target', cls_target), ('box_target', box_target)], False),
        'rcnn_hard_example_loss': (
            lambda: RCNNHardExampleLoss(HardExampleMiner(16, 0.7, 'both', 1., 1.)),
            [('cls_pred', logits), ('box_pred', per_class), ('cls_target', cls_target),
             ('box_target', per_class[::-1].copy()), ('box_mask', mask.astype('float32')),
             ('rois', anchors)], False)}


def load_detector(prefix, seed):
    """(detector, net, image shape) of a training recipe's run: PREFIX.params, described by
    PREFIX.json."""
    path = prefix + '.params'
    if not os.path.isfile(path):
        raise SystemExit('--params {}: no {} (a run writes PREFIX.params and PREFIX.json '
                         'under its --save-prefix PREFIX)'.format(prefix, path))
    try:
        with open(prefix + '.json') as f:
            metrics = json.load(f)
    except (OSError, ValueError):
        raise SystemExit('{} needs the metrics JSON its recipe wrote beside it ({}.json)'
                         .format(path, prefix))
    # an evaluation's JSON names the recipe too, but holds neither classes nor flags
    detector = RECIPES.get(metrics.get('recipe'))
    if detector is None or not {'classes', 'args'} <= set(metrics):
        raise SystemExit('{}.json was not written by train_faster_rcnn.py or train_ssd.py'
                         .format(prefix))
    net, shape = build_detector(detector, metrics['classes'], seed, metrics)
    # a missing weight still fails; saved training-only constants are skipped
    checkpoint.load_parameters(net, path, mx.cpu())
    return detector, net, shape


def build_detector(detector, classes, seed, run=None):
    """(net, image shape): the recipe's network, with a run's flags (``run``: its metrics
    JSON; a flag newer than the run at its default) or, without one, the recipe's defaults
    (the tiny network)."""
    # pylint: disable=import-outside-toplevel
    import importlib
    import report
    module = importlib.import_module('train_' + detector)
    args = argparse.Namespace(**report.run_flags(run, vars(module.parse_args([]))))
    mx.random.seed(seed)
    if detector == 'ssd':
        net, size = module.build_net(args, classes, [mx.cpu()])
        return net, (1, 3, size, size)
    args.batch_size, args.gpus = 1, []
    net = module.build_net(args, classes, [mx.cpu()])
    short = module.test_short(net)
    return net, (1, 3, short, int(short * 1.25))


def detector_examples(args):
    """[(name, net, [('image', input)], False, source)] for --params, then --fresh.

    A detector is named ``faster_rcnn`` or ``ssd``; when several of a kind are
    exported, ``faster_rcnn-1``, ``faster_rcnn-2``, ... in the order given.
    ``source`` is the params file, or ``'fresh'``.
    """
    # pylint: disable=import-outside-toplevel
    from gluonmine.data import CLASSES
    nets = [load_detector(prefix, args.seed) + (prefix + '.params',) for prefix in args.params]
    nets += [(detector,) + build_detector(detector, list(CLASSES), args.seed) + ('fresh',)
             for detector in args.fresh]
    kinds = collections.Counter(detector for detector, _, _, _ in nets)
    numbers = collections.Counter()
    rng = np.random.default_rng(args.seed)
    examples = []
    for detector, net, shape, source in nets:
        numbers[detector] += 1
        name = detector if kinds[detector] == 1 else '{}-{}'.format(detector, numbers[detector])
        examples.append((name, net, [('image', example_image(rng, shape))], False, source))
    return examples


def example_image(rng, shape):
    """A synthetic-dataset picture, normalised as GluonCV's transforms do: (1, 3, H, W)."""
    # pylint: disable=import-outside-toplevel
    from gluonmine.data import render
    image, _ = render(rng, shape[3], shape[2])
    pixels = (np.asarray(image, 'float32') / 255. - IMAGENET_MEAN) / IMAGENET_STD  # (H, W, 3)
    return pixels.transpose(2, 0, 1)[np.newaxis].astype('float32')


def export_block(name, block, inputs, random, seed, output, source=None):
    """Hybridize, run and export one block; save its check data; its manifest entry
    (``source``: a detector's params file or ``'fresh'``; None for gluonmine's blocks)."""
    # pylint: disable=import-outside-toplevel
    from mxnet import autograd
    block.hybridize()
    mx.random.seed(seed)
    with autograd.predict_mode():
        outputs = block(*[mx.nd.array(x) for _, x in inputs])
    outputs = [o.asnumpy() for o in (outputs if isinstance(outputs, (list, tuple))
                                     else [outputs])]
    prefix = os.path.join(output, name)
    block.export(prefix)
    arrays = {'input{}'.format(i): x for i, (_, x) in enumerate(inputs)}
    arrays.update({'output{}'.format(i): y for i, y in enumerate(outputs)})
    np.savez(prefix + '-check.npz', **arrays)
    has_params = os.path.exists(prefix + '-0000.params')
    names = ['data'] if len(inputs) == 1 else ['data{}'.format(i) for i in range(len(inputs))]
    return {'name': name,
            'class': '{}.{}'.format(type(block).__module__, type(block).__name__),
            'settings': repr(block) if len(repr(block)) < 400 else type(block).__name__,
            'symbol': name + '-symbol.json',
            'params': name + '-0000.params' if has_params else None,
            'inputs': [{'name': mx_name, 'argument': argument, 'shape': list(x.shape),
                        'dtype': str(x.dtype)}
                       for mx_name, (argument, x) in zip(names, inputs)],
            'outputs': [{'shape': list(y.shape), 'dtype': str(y.dtype)} for y in outputs],
            'random': random, 'check': name + '-check.npz', 'source': source}


def export_all(args):
    """Export every block to ``args.output``; returns the manifest (also written there)."""
    os.makedirs(args.output, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    examples = selection_examples(rng)
    blocks = [(name, make(), inputs, random, None) for name, (make, inputs, random)
              in examples.items()]
    for block in blocks:
        block[1].initialize()
    blocks += detector_examples(args)
    manifest = {'format': FORMAT_VERSION, 'mxnet': mx.__version__, 'seed': args.seed,
                'blocks': [export_block(name, block, inputs, random, args.seed, args.output,
                                        source)
                           for name, block, inputs, random, source in blocks]}
    with open(os.path.join(args.output, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
    return manifest


# ----------------------------------------------------------------------------- check

def check_block(folder, entry, seed):
    """Reload one exported block with MXNet only; the largest difference from the saved outputs."""
    path = lambda name: None if name is None else os.path.join(folder, name)  # noqa: E731
    with warnings.catch_warnings():     # the saved inputs carry the dtypes MXNet asks about
        warnings.filterwarnings('ignore', 'Cannot decide type')
        block = mx.gluon.SymbolBlock.imports(path(entry['symbol']),
                                             [x['name'] for x in entry['inputs']],
                                             path(entry['params']))
    saved = np.load(path(entry['check']))
    inputs = [mx.nd.array(saved['input{}'.format(i)]) for i in range(len(entry['inputs']))]
    mx.random.seed(seed)
    outputs = block(*inputs)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    if len(outputs) != len(entry['outputs']):
        raise AssertionError('{}: {} outputs, exported {}'.format(
            entry['name'], len(outputs), len(entry['outputs'])))
    worst = 0.
    for i, got in enumerate(outputs):
        got, want = got.asnumpy(), saved['output{}'.format(i)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5,
                                   err_msg='{} output {}'.format(entry['name'], i))
        worst = max(worst, float(np.abs(got - want).max()) if want.size else 0.)
    return worst


def check_all(folder):
    """Reload and compare everything in ``folder``; gluonmine and GluonCV are never imported."""
    path = os.path.join(folder, 'manifest.json')
    if not os.path.isfile(path):
        raise SystemExit('--check {}: no manifest.json there (export.py --output FOLDER writes '
                         'one)'.format(folder))
    with open(path) as f:
        manifest = json.load(f)
    for entry in manifest['blocks']:
        worst = check_block(folder, entry, manifest['seed'])
        print('{:24s} ok  inputs {}  largest difference {:.1e}'.format(
            entry['name'], ', '.join('{} {}'.format(x['name'], tuple(x['shape']))
                                     for x in entry['inputs']), worst))
    imported = sorted(name for name in ('gluonmine', 'gluoncv') if name in sys.modules)
    if imported:
        raise AssertionError('--check imported {}'.format(', '.join(imported)))
    print('{} blocks reloaded with MXNet only: same outputs'.format(len(manifest['blocks'])))


def main(argv=None):
    args = parse_args(argv)
    if args.check:
        check_all(args.check)
        return None
    manifest = export_all(args)
    for entry in manifest['blocks']:
        print('{:24s} -> {}{}'.format(
            entry['name'], os.path.join(args.output, entry['symbol']),
            {None: '', 'fresh': '  (fresh weights)'}.get(entry['source'],
                                                         '  (from {})'.format(entry['source']))))
    return manifest


if __name__ == '__main__':
    run_script(main, 'interrupted before the export or its check finished')
