"""What the training recipes share: flags, data, devices, distribution, evaluation, reports.

A recipe (``train_faster_rcnn.py``, ``train_ssd.py``) keeps only what is its
own (the network, the samplers, the training step) and takes the rest from
here:

- flags: :func:`add_common_args` (dataset, devices, optimisation, output);
- data: :func:`build_datasets` (the synthetic VOC dataset, made when missing,
  a real VOCdevkit or COCO), :func:`train_loader` (each worker of a
  distributed run reads its own shard), :func:`val_loader`;
- devices and distribution: :func:`contexts`, :class:`Distributed` (MXNet's
  parameter server through ``gluon.Trainer``), :func:`share_untrained`,
  :func:`build_trainer`;
- the run: :class:`Run` (set-up, then epochs of :func:`train_epoch` over a
  recipe's :data:`Step`, evaluation, a checkpoint after each epoch
  (``checkpoint.py``) and ``--resume`` from it, reports);
- evaluation: :func:`evaluate` (GluonCV's ``VOC07MApMetric``, per class, and
  on COCO also COCO's own AP, ``coco_eval.py``), :func:`precision_curves`;
- reports: :class:`LossLog`, :class:`SelectionStats`, :class:`MiningStats`,
  :func:`setup_logger`, :func:`progress`,
  :func:`output_paths` (the figures are ``plots.py``'s); and reading them back:
  :func:`read_run`, :func:`check_run_classes`.

Samples follow gluonmine's convention: +1 positive, -1 negative, 0 ignore.
Nothing here touches the environment or global state at import.
"""
import argparse
import collections
import json
import logging
import os
import random
import sys
import time
import warnings

import mxnet as mx
import numpy as np
from gluoncv.data.batchify import Append, Tuple
from gluoncv.nn.bbox import BBoxClipToImage
from gluoncv.utils.metrics.voc_detection import VOC07MApMetric
from mxnet import autograd, gluon

from gluonmine.data import (NonEmptyLabels, SyntheticVOCDetection, VOCFormatDetection,
                            check_class_names, make_synthetic_voc)
from gluonmine.rcnn_ohem import NEGATIVE_IOU_EDGES

import checkpoint
import coco_eval
import entry
import plots

SYNTHETIC_ROOT = os.path.join('data', 'synthetic_voc')
DATASETS = ('synthetic', 'voc', 'coco')
LOGGER_NAME = 'gluonmine.recipes'


# ----------------------------------------------------------------------------- flags

def add_common_args(parser, save_prefix, epochs, lr, batch_size):
    """Add the flags every recipe shares; the recipe chooses the defaults that differ."""
    add = parser.add_argument
    add('--dataset', choices=DATASETS, default='synthetic',
        help='synthetic: made under --dataset-root when missing; voc: a VOCdevkit '
             '(VOC2007 and VOC2012 folders); coco: a COCO root (needs pycocotools) '
             '(default: %(default)s)')
    add('--dataset-root', default=SYNTHETIC_ROOT,
        help='where the dataset is (default: %(default)s)')
    add('--classes', nargs='+', default=None, metavar='NAME',
        help="--dataset voc: your VOC-format dataset's class names as its annotations "
             "spell them, in lower case, in label order (default: VOC's 20)")
    add('--train-splits', nargs='+', type=voc_split, default=None, metavar='YEAR:NAME',
        help='--dataset voc: training image lists, VOC<YEAR>/ImageSets/Main/<NAME>.txt '
             '(default: 2007:trainval 2012:trainval)')
    add('--val-splits', nargs='+', type=voc_split, default=None, metavar='YEAR:NAME',
        help='--dataset voc: validation image lists (default: 2007:test)')
    add('--num-train-images', type=int, default=None,
        help='train on the first N training images only (default: all)')
    add('--num-val-images', type=int, default=None,
        help='evaluate on the first N validation images only (default: all)')
    add('--gpus', type=int, nargs='*', default=[],
        help='GPU ids, e.g. --gpus 0 1 (default: none, train on the CPU)')
    add('--batch-size', type=int, default=batch_size,
        help='images per iteration of this worker, split over its devices '
             '(default: %(default)s)')
    add('--epochs', type=int, default=epochs, help='training epochs (default: %(default)s)')
    add('--max-iters', type=int, default=None,
        help='stop after this many iterations in all (default: no limit)')
    add('--lr', type=float, default=lr,
        help='peak learning rate of SGD with momentum; linear warm-up, then cosine decay '
             'to 1%% of it (default: %(default)s)')
    add('--warmup-iters', type=int, default=200,
        help='iterations of linear learning-rate warm-up (default: %(default)s)')
    add('--momentum', type=float, default=0.9, help='SGD momentum (default: %(default)s)')
    add('--wd', type=float, default=1e-4, help='weight decay (default: %(default)s)')
    add('--seed', type=int, default=0,
        help='seed of mx.random, numpy.random and random; with a dist_* kvstore, of worker '
             '0, each other worker deriving its own from it and its rank (default: %(default)s)')
    add('--num-workers', type=int, default=0,
        help='DataLoader worker processes; 0 loads in the training process '
             '(default: %(default)s)')
    add('--kvstore', default='device', choices=KVSTORES,
        help="MXNet kvstore: 'device', 'local' or (GPUs) 'nccl' on one machine, "
             "'dist_sync' or 'dist_device_sync' for data-parallel training over MXNet's "
             'parameter server, in processes started with its DMLC_* variables '
             '(default: %(default)s)')
    add('--save-prefix', default=save_prefix,
        help='outputs go to PREFIX.params, .ckpt, .json, .png and .log; with several workers '
             'PREFIX-workerR.* (default: %(default)s)')
    add('--log-interval', type=int, default=50,
        help='log running losses every N iterations (default: %(default)s)')
    add('--val-interval', type=int, default=1,
        help='evaluate every N epochs, and always after the last (default: %(default)s)')
    add('--resume', action='store_true',
        help='continue the run saved under --save-prefix after its last finished epoch '
             '(PREFIX.ckpt), with the same flags')
    return parser


def check_common_args(parser, args):
    """Reject values argparse cannot (non-positive counts, optimizer settings that cannot
    train)."""
    for name in ('batch_size', 'epochs', 'log_interval', 'val_interval'):
        if getattr(args, name) < 1:
            parser.error('--{} must be >= 1, got {}'.format(name.replace('_', '-'),
                                                              getattr(args, name)))
    for name in ('num_train_images', 'num_val_images', 'max_iters'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error('--{} must be >= 1'.format(name.replace('_', '-')))
    if args.num_workers < 0 or args.warmup_iters < 0:
        parser.error('--num-workers and --warmup-iters must be >= 0')
    if not (args.lr > 0 and 0 <= args.momentum < 1 and args.wd >= 0):
        parser.error('need --lr > 0, 0 <= --momentum < 1 and --wd >= 0, got {}, {} and {}'
                     .format(args.lr, args.momentum, args.wd))
    if args.batch_size % max(1, len(args.gpus)):
        parser.error('--batch-size {} does not split over {} GPUs'.format(
            args.batch_size, len(args.gpus)))
    voc_only = [name for name in ('classes', 'train_splits', 'val_splits')
                if getattr(args, name) is not None]
    if voc_only and args.dataset != 'voc':
        parser.error('{} need --dataset voc'.format(
            ', '.join('--' + name.replace('_', '-') for name in voc_only)))
    if args.classes is not None:
        try:
            check_class_names(args.classes)
        except ValueError as error:
            parser.error('--{}'.format(error))


def voc_split(text):
    """``'2007:trainval'`` -> ``(2007, 'trainval')``: a VOC image list, as GluonCV's splits."""
    year, _, name = text.partition(':')
    if not (len(year) == 4 and year.isdigit() and name):
        raise argparse.ArgumentTypeError('{!r} is not YEAR:NAME, e.g. 2007:trainval'
                                         .format(text))
    return int(year), name


def worker_seed(entropy, rank):
    """A 31-bit seed from ``entropy`` (int or list of ints) for worker ``rank`` of a run.

    Worker 0's seed does not depend on the rank (a one-worker run is worker 0);
    every other worker's is its own, so that the workers of a ``dist_*`` run
    draw different random samples from ``mx.random`` (with one seed, two images
    of one shape on two workers shared 85% of their sampled negative anchors).
    """
    spawn_key = (rank,) if rank else ()
    return int(np.random.SeedSequence(entropy, spawn_key=spawn_key).generate_state(1)[0]
               % (2 ** 31 - 1))


def seed_everything(seed, rank=0):
    """Seed MXNet's, NumPy's and Python's generators: with ``seed`` itself on worker 0,
    with :func:`worker_seed` on the others."""
    seed = worker_seed(seed, rank) if rank else seed
    mx.random.seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def contexts(gpus):
    """The training devices: one ``mx.gpu(i)`` per id, or the CPU. SystemExit for ids this
    MXNet cannot see (a CPU-only build sees none), before anything runs on them."""
    visible = mx.context.num_gpus() if gpus else 0
    if any(not 0 <= i < visible for i in gpus):
        raise SystemExit('--gpus {}: this MXNet sees {} GPU(s){}'.format(
            ' '.join(str(i) for i in gpus), visible,
            ' (a CPU-only build; a CUDA build is e.g. mxnet-cu112==1.9.1)' if not visible else ''))
    return [mx.gpu(i) for i in gpus] or [mx.cpu()]


# ----------------------------------------------------------------------------- distribution

#: The ``--kvstore`` values: one machine, or synchronous training over the parameter server
#: (asynchronous updates would leave the workers with different weights).
KVSTORES = ('device', 'local', 'nccl', 'dist_sync', 'dist_device_sync')
#: What MXNet's parameter server reads to join a job (ps-lite aborts without them).
DMLC_VARIABLES = ('DMLC_ROLE', 'DMLC_PS_ROOT_URI', 'DMLC_PS_ROOT_PORT', 'DMLC_NUM_SERVER',
                  'DMLC_NUM_WORKER')


class Distributed(object):
    """This process's place in a data-parallel run, and MXNet's kvstore for it.

    With a ``dist_*`` kvstore, the processes started with MXNet's ``DMLC_*``
    variables (scheduler, servers, workers) form one job: ``gluon.Trainer``
    pushes every worker's gradients to the servers, which sum them and apply
    the optimizer (``update_on_kvstore``), and every worker pulls the same new
    weights. :meth:`share_untrained` hands what gradients do not reach
    (BatchNorm running statistics) from worker 0 to the others, so that all
    workers end with identical parameters. Otherwise this is one worker.

    Parameters
    ----------
    kvstore : str
        The ``--kvstore`` flag.
    """

    def __init__(self, kvstore):
        self.name = kvstore
        missing = [name for name in DMLC_VARIABLES if name not in os.environ] \
            if 'dist' in kvstore else []
        if missing:
            raise SystemExit('--kvstore {} makes this process one worker of a job started with '
                             "MXNet's DMLC_* variables; {} not set (see \"Several machines\" in "
                             'recipes/README.md)'.format(kvstore, ', '.join(missing)))
        self.kv = mx.kv.create(kvstore) if 'dist' in kvstore else None
        self.rank = self.kv.rank if self.kv else 0
        self.num_workers = self.kv.num_workers if self.kv else 1
        self._next_key = None

    def trainer_kvstore(self):
        """What ``gluon.Trainer`` gets as ``kvstore``."""
        return self.kv if self.kv else self.name

    def share_untrained(self, params, first_key):
        """Give every device of every worker the values of ``params`` (a list of
        Parameters) on worker 0's first device.

        Across workers, each call initialises fresh kvstore keys from worker 0
        (a key's first value is stored as is, never passed to the servers'
        optimizer) and pulls them everywhere. ``first_key`` must lie above the
        Trainer's own keys (0 .. number of trained parameters - 1).
        """
        if not params or (not self.kv and len(params[0].list_ctx()) == 1):
            return                                  # one worker, one device: all agree
        arrays = [p.data(p.list_ctx()[0]) for p in params]
        if self.kv:
            start = first_key if self._next_key is None else self._next_key
            keys = list(range(start, start + len(params)))
            self._next_key = keys[-1] + 1
            self.kv.broadcast(keys, arrays, out=arrays)
        for param, array in zip(params, arrays):
            param.set_data(array)


def share_untrained(net, trainer_params, dist):
    """Give every device and worker the first device's values (worker 0's) of what the
    trainer does not update (BatchNorm running statistics, which each device updates
    from its own images), so that all hold the parameters that are saved.

    ``trainer_params`` maps names to the parameters the trainer updates.
    """
    untrained = [p for name, p in sorted(net.collect_params().items())
                 if name not in trainer_params and not isinstance(p, gluon.Constant)]
    dist.share_untrained(untrained, first_key=len(trainer_params))


def build_trainer(params, args, num_iters, dist):
    """SGD with momentum, linear warm-up then cosine decay over ``num_iters`` updates.

    ``params`` maps names to the parameters to train (``grad_req`` not 'null').
    """
    warmup = min(args.warmup_iters, max(num_iters - 1, 0))
    schedule = mx.lr_scheduler.CosineScheduler(
        max(num_iters, 1), base_lr=args.lr, final_lr=args.lr * 0.01, warmup_steps=warmup,
        warmup_begin_lr=args.lr * 0.1)
    optimizer = {'learning_rate': args.lr, 'momentum': args.momentum, 'wd': args.wd,
                 'lr_scheduler': schedule, 'clip_gradient': 5.}
    return gluon.Trainer(params, 'sgd', optimizer, kvstore=dist.trainer_kvstore())


# ----------------------------------------------------------------------------- data

def build_datasets(args, train=True):
    """(train, val, classes) for ``--dataset``; the synthetic one is made when missing.

    With ``train=False`` (evaluation only) the training set is not read: None.
    """
    root = os.path.expanduser(args.dataset_root)
    if args.dataset == 'synthetic':
        make_synthetic_voc(root)
        train_set = SyntheticVOCDetection(root, splits=((2007, 'train'),)) if train else None
        val = SyntheticVOCDetection(root, splits=((2007, 'val'),))
    elif args.dataset == 'voc':
        train_set, val = _voc(root, train, *(getattr(args, name, None) for name in
                                             ('classes', 'train_splits', 'val_splits')))
    else:
        train_set, val = _coco(root, train)
    classes = list(val.classes)
    if train and args.num_train_images:
        train_set = train_set.take(args.num_train_images)
    if args.num_val_images:
        val = val.take(args.num_val_images)
    return train_set, val, classes


def require_paths(reader, paths):
    """SystemExit naming each of ``paths`` that does not exist (``reader`` says who needs them)."""
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:
        raise SystemExit('{}; missing: {}'.format(reader, ', '.join(missing)))


def _voc(root, train, classes=None, train_splits=None, val_splits=None):
    """(train, val) of a VOCdevkit, or of a VOC-format dataset with its own classes and
    splits; splits are (year, name) pairs (lists when read back from a run's JSON)."""
    train_splits = tuple(map(tuple, train_splits or ((2007, 'trainval'), (2012, 'trainval'))))
    val_splits = tuple(map(tuple, val_splits or ((2007, 'test'),)))
    require_paths('--dataset voc reads a VOCdevkit at --dataset-root', [
        os.path.join(root, 'VOC{}'.format(year), 'ImageSets', 'Main', name + '.txt')
        for year, name in (train_splits if train else ()) + val_splits])
    return (_voc_set(root, train_splits, classes) if train else None,
            _voc_set(root, val_splits, classes))


def _voc_set(root, splits, classes):
    """A :class:`VOCFormatDetection`, or SystemExit when it holds no object of its classes.

    Objects of other classes are skipped, so a wrong ``--dataset-root`` or
    misspelled ``--classes`` would otherwise train or evaluate on empty images.
    """
    dataset = VOCFormatDetection(root, splits=splits, classes=classes)
    if not dataset.object_counts().any():
        raise SystemExit("the {} images of {} hold no object of the run's classes ({}): are "
                         '--dataset-root and --classes right?'.format(
                             len(dataset), ' '.join('{}:{}'.format(*s) for s in splits),
                             ', '.join(dataset.classes)))
    return dataset


def _coco(root, train):
    """(train, val) of a COCO 2017 layout, or SystemExit naming what is missing."""
    try:
        import pycocotools  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    except ImportError:
        raise SystemExit('--dataset coco needs pycocotools: pip install -e ".[coco]" '
                         '(or pip install pycocotools)')
    splits = ('train2017', 'val2017') if train else ('val2017',)
    require_paths('--dataset coco reads COCO 2017 at --dataset-root', [
        os.path.join(root, *parts) for split in splits
        for parts in [('annotations', 'instances_{}.json'.format(split)), (split,)]])
    from gluoncv.data import COCODetection
    return (COCODetection(root, splits='instances_train2017', use_crowd=False) if train
            else None, COCODetection(root, splits='instances_val2017', skip_empty=False))


class ShardBatchSampler(gluon.data.Sampler):
    """Batches of this worker's shard, reshuffled each epoch with ``numpy.random``.

    Worker ``part`` of ``num_parts`` reads images ``part, part + num_parts, ...``,
    every worker the same number (the remainder is dropped) so that all of them
    run the same number of iterations, as synchronous training needs. The last
    incomplete batch is dropped: the network's batch size is fixed. Batches
    hold draw numbers ``epoch * length + image`` for :class:`SeededDraws`
    (``epoch`` counts from 0; :meth:`set_epoch` sets it, to resume a run).

    Parameters
    ----------
    length : int
        Images in the dataset.
    batch_size : int
        Images per batch.
    num_parts : int, default 1
        Workers.
    part : int, default 0
        This worker's rank.
    """

    def __init__(self, length, batch_size, num_parts=1, part=0):
        per_part = length // num_parts
        self._length = length
        self._indices = np.arange(part, per_part * num_parts, num_parts)
        self._batch_size = batch_size
        self._epoch = 0
        if len(self) == 0:
            raise SystemExit('{} training images per worker are fewer than --batch-size {}'
                             .format(per_part, batch_size))

    def set_epoch(self, epoch):
        """Make the next pass the 1-based ``epoch``'s (its draw numbers)."""
        self._epoch = epoch - 1

    def __iter__(self):
        order = np.random.permutation(self._indices) + self._epoch * self._length
        self._epoch += 1
        for i in range(len(self)):
            yield order[i * self._batch_size:(i + 1) * self._batch_size].tolist()

    def __len__(self):
        return len(self._indices) // self._batch_size


class SeededDraws(gluon.data.Dataset):
    """A dataset whose random augmentation depends on the draw, not on the process.

    Item ``k`` is image ``k % len(dataset)``, read (and transformed) with
    ``numpy.random`` and ``random`` seeded from ``(seed, k)``; the caller's
    generator states are restored afterwards. So flips and crops are the same
    in every run with the same seed, whichever DataLoader worker makes them,
    and differ between epochs (``k`` grows by ``len(dataset)`` each epoch).

    Parameters
    ----------
    dataset : Dataset
        The (transformed) dataset.
    seed : int
        The run's seed.
    """

    def __init__(self, dataset, seed):
        self._dataset = dataset
        self._seed = int(seed)

    def __len__(self):
        return len(self._dataset)

    def __getitem__(self, draw):
        state, py_state = np.random.get_state(), random.getstate()
        seed = int(np.random.SeedSequence([self._seed, int(draw)]).generate_state(1)[0])
        np.random.seed(seed)
        random.seed(seed)
        try:
            return self._dataset[int(draw) % len(self._dataset)]
        finally:
            np.random.set_state(state)
            random.setstate(py_state)


def train_loader(dataset, batch_size, batchify, num_workers, dist, seed):
    """This worker's training DataLoader over a transformed dataset, augmentation seeded
    per draw (:class:`SeededDraws`)."""
    sampler = ShardBatchSampler(len(dataset), batch_size, dist.num_workers, dist.rank)
    return TrainLoader(SeededDraws(dataset, seed), batch_sampler=sampler,
                       batchify_fn=batchify, num_workers=num_workers)


class TrainLoader(gluon.data.DataLoader):
    """A DataLoader over :class:`ShardBatchSampler` batches whose next pass can be chosen."""

    def set_epoch(self, epoch):
        """Make the next pass the 1-based ``epoch``'s (:meth:`ShardBatchSampler.set_epoch`)."""
        self._batch_sampler.set_epoch(epoch)


def val_loader(dataset, transform, num_devices, num_workers):
    """Validation batches ``(images, labels, scales)``: one image per device, as lists."""
    batchify = NonEmptyLabels(Tuple(Append(), Append(), Append()))
    return gluon.data.DataLoader(dataset.transform(transform), num_devices, False,
                                 batchify_fn=batchify, last_batch='keep',
                                 num_workers=num_workers)


def as_shards(x):
    """A batchify output as a list of per-device arrays (GluonCV returns a bare array for one)."""
    return list(x) if isinstance(x, (list, tuple)) else [x]


# ----------------------------------------------------------------------------- training loop

# A recipe's training step: ``run(batch) -> outputs`` (every device's forward and
# backward, then one update), ``losses(outputs) -> {name: float}`` (waits for the
# step to finish) and ``record(outputs, stats)`` (adds the selection statistics).
Step = collections.namedtuple('Step', 'run losses record')


def train_epoch(step, loader, stats, log, args, epoch, max_iters):
    """One pass over this worker's shard (at most ``max_iters`` iterations): an epoch record.

    Seconds per iteration count loading and the step until its losses are
    ready; statistics are gathered after the clock stops.
    """
    seconds, logger = [], logging.getLogger(LOGGER_NAME)
    bar = progress(min(len(loader), max_iters), 'epoch {}/{}'.format(epoch, args.epochs))
    tic = time.time()
    for i, batch in enumerate(loader):
        if i >= max_iters:
            break
        outputs = step.run(batch)
        log.add(step.losses(outputs))
        seconds.append(time.time() - tic)
        step.record(outputs, stats)
        running = log.running()
        bar.set_postfix({k: '{:.3f}'.format(v) for k, v in running.items()}, refresh=False)
        bar.update()
        if (i + 1) % args.log_interval == 0:
            logger.info('[epoch %d iteration %d] %.3f s/it %s', epoch, i + 1, seconds[-1],
                        _fmt(running))
        tic = time.time()
    bar.close()
    return {'epoch': epoch, 'iterations': len(seconds), 'seconds': sum(seconds),
            'seconds_per_iteration': sum(seconds) / max(len(seconds), 1),
            'losses': log.end_epoch(), 'map': None}


class Run(object):
    """One training run: what every recipe's ``main`` does around its own network and step.

    On construction: seeds (:func:`seed_everything`), this worker's place
    (:class:`Distributed`), output paths, with ``--resume`` the checkpoint
    (read, and its flags checked against these), the log, devices and
    datasets, and the :class:`RunReport`. The recipe then builds its net,
    loaders, trainer (with :meth:`iterations`) and :data:`Step`, and calls
    :meth:`train`.

    Parameters
    ----------
    recipe : str
        The recipe's name (the metrics JSON's ``recipe``).
    args : argparse.Namespace
        Its flags (those of :func:`add_common_args` among them).
    losses : list of str
        Names of the losses its step reports.
    """

    def __init__(self, recipe, args, losses):
        self.args = args
        self.dist = Distributed(args.kvstore)
        seed_everything(args.seed, self.dist.rank)
        self.paths = output_paths(args.save_prefix, self.dist)
        self.saved = checkpoint.load(self.paths['ckpt']) if args.resume else None
        if self.saved:
            check_resumable(self.saved['args'], args)
        self.logger = setup_logger(self.paths['log'], append=args.resume)
        self.logger.info('arguments: %s', vars(args))
        self.start, self.ctx = time.time(), contexts(args.gpus)
        self._plotted = self.start
        self.train_set, self.val_set, self.classes = build_datasets(args)
        self.coco = coco_eval.coco_metric(args, len(self.val_set)) if self.dist.rank == 0 else None
        self.report = RunReport(recipe, args, self.classes, self.dist, losses)

    def iterations(self, train_data):
        """Iterations of the whole run: ``--epochs`` passes, at most ``--max-iters``."""
        return min(self.args.epochs * len(train_data), self.args.max_iters or float('inf'))

    def train(self, net, params, trainer, step, loaders, new_stats, hybridize):
        """Train epoch after epoch, checkpoint each, write the reports: the metrics.

        Before each epoch ``hybridize()`` (the recipe's own setting, since
        evaluation re-hybridizes the net); after it, every device and worker
        takes worker 0's first device's BatchNorm statistics
        (:func:`share_untrained`), worker 0
        evaluates (:func:`evaluate` on the run's devices and classes) every
        ``--val-interval`` epochs and after the last, and the run is saved
        (:meth:`save`). With ``--resume`` it starts after the checkpoint's
        last epoch (:meth:`resume`). ``params`` are the trained parameters
        by name, ``trainer`` their ``gluon.Trainer``, ``loaders``
        ``(train_loader, val_loader)``, ``new_stats()`` a fresh statistics
        dict for the step's ``record``.
        """
        args, report, dist = self.args, self.report, self.dist
        (train_data, val_data), num_iters = loaders, self.iterations(loaders[0])
        first = self.resume(net, trainer, new_stats) if self.saved else 1
        epoch = first
        try:
            for epoch in range(first, args.epochs + 1):
                train_data.set_epoch(epoch)
                hybridize()
                stats = new_stats()
                record = train_epoch(step, train_data, stats, report.losses, args, epoch,
                                     num_iters - report.iterations)
                share_untrained(net, params, dist)
                last = (epoch == args.epochs
                        or report.iterations + record['iterations'] >= num_iters)
                if dist.rank == 0 and (last or epoch % args.val_interval == 0):
                    record.update(evaluate(net, val_data, self.ctx, self.classes, self.coco))
                report.add_epoch(record, stats, self.logger)
                self.save(net, trainer, epoch, finished=last)
                if last:
                    break
        except KeyboardInterrupt as interrupt:
            if report.metrics['epochs']:
                self.plot_so_far()
            self.logger.warning('interrupted in epoch %d: %s', epoch, 'nothing saved yet' if
                                epoch == 1 else '{} holds the run up to epoch {}; the same '
                                'command with --resume continues it'.format(
                                    self.paths['ckpt'], epoch - 1))
            interrupt.logged = True         # for entry.run_script
            raise
        report.finish(self.paths, time.time() - self.start, self.logger)
        return report.metrics

    def save(self, net, trainer, epoch, finished):
        """Checkpoint the run after ``epoch``: PREFIX.ckpt and PREFIX.params, then (unless
        ``finished``: :meth:`RunReport.finish` writes them) the metrics so far, and the
        plot so far when the last is :data:`PLOT_EVERY` seconds old.

        Trainer states are not saved with a ``dist_*`` kvstore (its optimizer
        runs on the servers).
        """
        checkpoint.save(self.paths['ckpt'], net, None if self.dist.kv else trainer,
                        self.paths['params'], args=vars(self.args), epoch=epoch,
                        finished=finished, seconds=time.time() - self.start,
                        report=self.report.state(), numpy=np.random.get_state(),
                        python=random.getstate())
        if not finished:
            entry.write_json(self.paths['json'], self.report.metrics)
            if time.time() - self._plotted >= PLOT_EVERY:   # a plot takes about a second
                self.plot_so_far()

    def plot_so_far(self):
        """PREFIX.png of the epochs so far, with :meth:`RunReport.summary` as its ``final``."""
        so_far = self.report.summary(self.paths, time.time() - self.start)
        plots.plot_metrics(self.paths['png'], dict(self.report.metrics, final=so_far))
        self._plotted = time.time()

    def resume(self, net, trainer, new_stats):
        """Load the checkpoint into the net, trainer, report and generators: the first epoch
        still to train (past ``--epochs`` when the run had finished).

        Continues as the interrupted run would have, with one exception:
        MXNet cannot save ``mx.random``'s state, so it is seeded anew from
        ``(--seed, epoch)`` (and the rank, on workers other than 0:
        :func:`worker_seed`) and the random draws differ from an uninterrupted
        run's. With a ``dist_*`` kvstore the servers' optimizer resumes its
        update count (the learning-rate schedule) but not its momentum.
        """
        saved, args = self.saved, self.args
        restored = checkpoint.restore(saved, net, None if self.dist.kv else trainer, self.ctx)
        self.report.restore(saved['report'], new_stats, args)
        iterations = self.report.iterations
        if not restored:
            optimizer = trainer.optimizer
            optimizer.begin_num_update = optimizer.num_update = iterations
        np.random.set_state(saved['numpy'])
        random.setstate(saved['python'])
        mx.random.seed(worker_seed([args.seed, saved['epoch'] + 1], self.dist.rank))
        self.start -= saved['seconds']
        self.logger.info('resumed from %s after epoch %d (%d iterations)%s',
                         self.paths['ckpt'], saved['epoch'], iterations,
                         '' if restored else '; optimizer states restarted (dist kvstore)')
        return args.epochs + 1 if saved['finished'] else saved['epoch'] + 1


#: Seconds between two plots of a run in progress (each epoch's metrics JSON is written).
PLOT_EVERY = 60.


#: Flags a resumed run may change: they do not change what is trained.
RESUME_MAY_CHANGE = ('resume', 'num_workers', 'log_interval', 'val_interval', 'gpus',
                     'dataset_root', 'save_prefix')


def check_resumable(saved_args, args):
    """SystemExit naming each flag of ``args`` that differs from the checkpoint's run
    (``saved_args``, a dict), other than :data:`RESUME_MAY_CHANGE`."""
    changed = ['--{} {} (checkpoint: {})'.format(name.replace('_', '-'), value,
                                                 saved_args.get(name))
               for name, value in sorted(vars(args).items())
               if name not in RESUME_MAY_CHANGE and saved_args.get(name) != value]
    if changed:
        raise SystemExit('--resume continues a run with its own flags; these differ: {}'
                         .format('; '.join(changed)))


# ----------------------------------------------------------------------------- evaluation

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

    ``loader`` yields ``(images, labels, scales)`` lists as :func:`val_loader`
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


# ----------------------------------------------------------------------------- statistics

class LossLog(object):
    """Per-iteration loss values and their running and per-epoch means.

    Parameters
    ----------
    names : list of str
        Loss names, in display order.
    """

    def __init__(self, names):
        self.names = list(names)
        self.curve = {name: [] for name in self.names}
        self._epoch_start = 0

    def add(self, values):
        """Record one iteration: ``values`` maps each name to a float."""
        for name in self.names:
            self.curve[name].append(float(values[name]))

    def running(self, window=20):
        return {name: float(np.mean(v[-window:])) for name, v in self.curve.items() if v}

    def resume(self, curve):
        """Continue a saved ``curve`` (name -> values), its epochs ended."""
        self.curve = curve
        self._epoch_start = len(curve[self.names[0]])

    def end_epoch(self):
        """Means over the iterations since the last call."""
        start, self._epoch_start = self._epoch_start, len(self.curve[self.names[0]])
        return {name: float(np.mean(v[start:])) for name, v in self.curve.items()
                if len(v) > start}


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


# ----------------------------------------------------------------------------- reports

class RunReport(object):
    """A run's metrics: per-iteration losses, epoch records, sampler statistics, final mAP.

    ``metrics`` (the JSON written by :meth:`finish`) holds ``recipe``,
    ``args``, ``classes``, ``rank``, ``num_workers``, ``loss_curve`` (loss
    name -> one value per iteration), ``epochs`` (one record per epoch:
    ``epoch``, ``iterations``, ``seconds``, ``seconds_per_iteration``,
    ``losses``, ``map`` or None, ``sampler``; with ``--dataset coco`` also
    ``coco`` when evaluated) and ``final`` (``map``: AP per class and 'mAP' of
    the last evaluation, ``mean_ap``, ``coco`` of the last COCO evaluation if
    any, ``iterations``, ``seconds_per_iteration``, ``wall_seconds``,
    ``sampler`` over the whole run, ``params``).

    Parameters
    ----------
    recipe : str
        The recipe's name.
    args : argparse.Namespace
        Its flags.
    classes : list of str
        Class names.
    dist : Distributed
        This worker's place.
    loss_names : list of str
        Names of the losses logged every iteration.
    """

    def __init__(self, recipe, args, classes, dist, loss_names):
        self.losses = LossLog(loss_names)
        self.metrics = {'recipe': recipe, 'args': vars(args), 'classes': list(classes),
                        'rank': dist.rank, 'num_workers': dist.num_workers,
                        'loss_curve': self.losses.curve, 'epochs': []}
        self._stats = None

    @property
    def iterations(self):
        return sum(e['iterations'] for e in self.metrics['epochs'])

    def add_epoch(self, record, stats, logger):
        """Keep an epoch record and its sampler statistics (name -> accumulator)."""
        record['sampler'] = {name: s.summary() for name, s in stats.items()}
        self.metrics['epochs'].append(record)
        if self._stats is None:
            self._stats = stats
        else:
            for name, s in stats.items():
                self._stats[name].merge(s)
        logger.info('[epoch %d] %d iterations, %.3f s/it, losses %s', record['epoch'],
                    record['iterations'], record['seconds_per_iteration'],
                    _fmt(record['losses']))
        logger.info('[epoch %d] sampler %s', record['epoch'], _fmt_sampler(record['sampler']))
        if record.get('map'):
            logger.info('[epoch %d] VOC07 AP %s', record['epoch'], _fmt(record['map']))
        if record.get('coco'):
            logger.info('[epoch %d] COCO %s', record['epoch'], _fmt(record['coco']))

    def state(self):
        """The report as plain data, for a checkpoint (:meth:`restore` takes it back)."""
        stats = {name: dict(vars(s)) for name, s in (self._stats or {}).items()}
        return {'metrics': self.metrics, 'stats': stats}

    def restore(self, state, new_stats, args):
        """Continue a report from :meth:`state`; ``args`` are the resumed run's flags and
        ``new_stats()`` makes the statistics objects the saved counts go into."""
        self.metrics = dict(state['metrics'], args=vars(args))
        self.losses.resume(self.metrics['loss_curve'])
        self._stats = new_stats()
        for name, accumulator in self._stats.items():
            vars(accumulator).update(state['stats'][name])

    def summary(self, paths, wall_seconds):
        """The run so far: the metrics' ``final`` record."""
        epochs = self.metrics['epochs']
        evaluated = [e['map'] for e in epochs if e.get('map')]
        seconds = sum(e['seconds'] for e in epochs)
        final_map = evaluated[-1] if evaluated else None
        coco = [e['coco'] for e in epochs if e.get('coco')]
        return {'map': final_map, 'mean_ap': final_map.get('mAP') if final_map else None,
                **({'coco': coco[-1]} if coco else {}), 'iterations': self.iterations,
                'seconds_per_iteration': seconds / max(self.iterations, 1),
                'wall_seconds': wall_seconds, 'params': paths['params'],
                'sampler': {name: s.summary() for name, s in (self._stats or {}).items()}}

    def finish(self, paths, wall_seconds, logger):
        """Write the metrics JSON and the PNG; log where everything went."""
        self.metrics['final'] = self.summary(paths, wall_seconds)
        final_map = self.metrics['final']['map']
        entry.write_json(paths['json'], self.metrics)
        plots.plot_metrics(paths['png'], self.metrics)
        mean_ap = None if final_map is None else final_map['mAP']
        coco = self.metrics['final'].get('coco')
        logger.info('done in %.0f s: mAP %s%s; wrote %s', wall_seconds,
                    'n/a' if mean_ap is None else '{:.4f}'.format(mean_ap),
                    ' (COCO AP {:.4f})'.format(plots.number(coco['AP'])) if coco else '',
                    ', '.join(paths[k] for k in ('params', 'json', 'png', 'log')))


def _fmt(values):
    return ' '.join('{}={:.4f}'.format(k, plots.number(v)) for k, v in values.items())


def _fmt_sampler(sampler):
    parts = []
    for stage, stats in sampler.items():
        if stats:
            parts.append('{}: {:.1f} pos {:.1f} neg/image, fill {:.3f}'.format(
                stage, stats['positives_per_image'], stats['negatives_per_image'],
                stats['fill_rate']) if 'fill_rate' in stats else '{}: {}'.format(
                    stage, _fmt(stats)))
    return '; '.join(parts)


def read_run(prefix, recipes):
    """A training run's metrics (``PREFIX.json``, next to ``PREFIX.params``); SystemExit
    when PREFIX holds no run of one of ``recipes`` (their names, e.g. 'train_ssd')."""
    path = prefix + '.json'
    if not os.path.isfile(path) or not os.path.isfile(prefix + '.params'):
        raise SystemExit('{}: no training run there (PREFIX.json and PREFIX.params, written '
                         'by recipes/train_*.py --save-prefix PREFIX)'.format(prefix))
    with open(path) as f:
        run = json.load(f)
    if run.get('recipe') not in recipes:
        raise SystemExit('{}: written by {!r}, not by {}'.format(
            path, run.get('recipe'), ' or '.join(sorted(recipes))))
    return run


def check_run_classes(run, classes, dataset):
    """SystemExit unless a dataset's ``classes`` are those a run (:func:`read_run`) trained."""
    if classes != run['classes']:
        raise SystemExit('the run was trained for classes {}, --dataset {} has {}'.format(
            run['classes'], dataset, classes))


def output_paths(prefix, dist):
    """{'params', 'json', 'png', 'log', 'ckpt'}: PREFIX.ext, or PREFIX-workerR.ext with several
    workers."""
    if dist.num_workers > 1:
        prefix = '{}-worker{}'.format(prefix, dist.rank)
    directory = os.path.dirname(prefix)
    if directory:
        os.makedirs(directory, exist_ok=True)
    return {ext: prefix + '.' + ext for ext in ('params', 'json', 'png', 'log', 'ckpt')}


class _TqdmHandler(logging.StreamHandler):
    """Console logging that does not break a progress bar."""

    def emit(self, record):
        from tqdm import tqdm
        tqdm.write(self.format(record), file=sys.stderr)


def setup_logger(path, append=False):
    """The recipes' logger, writing to ``path`` (after what it holds with ``append``) and to
    the console."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S')
    for handler in (logging.FileHandler(path, mode='a' if append else 'w'), _TqdmHandler()):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def progress(total, description):
    """A tqdm progress bar on stderr (hidden when stderr is not a terminal)."""
    from tqdm import tqdm
    return tqdm(total=total, desc=description, unit='it', dynamic_ncols=True, leave=False,
                disable=None)
