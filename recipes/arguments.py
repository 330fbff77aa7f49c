"""The flags every training recipe shares: dataset, devices, optimisation, output.

A recipe adds them with :func:`add_common_args`, choosing the defaults that
differ (output prefix, epochs, learning rate, batch size), and checks what
argparse cannot with :func:`check_common_args`.
"""
import argparse
import os

from gluonmine.data import check_class_names

import entry
from loaders import DATASETS, SYNTHETIC_ROOT
from parallel import KVSTORES


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
    add('--save-prefix', default=save_prefix, type=entry.RUN,
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


def check_output(parser, output, run):
    """Refuse an ``--output`` prefix that is the ``run``'s own: it would overwrite the run's
    metrics and plot."""
    if output is not None and run is not None and (
            os.path.abspath(output) == os.path.abspath(run)):
        parser.error("--output {} is the run's own prefix: its .json and .png would be "
                     'overwritten; choose another'.format(output))
