"""The recipes' data: which dataset (:func:`build_datasets`) and how it is read.

:func:`build_datasets` gives the synthetic VOC dataset (made when missing), a
real VOCdevkit or a COCO 2017 root; :func:`train_loader` reads this worker's
shard of the training set (:class:`ShardBatchSampler`) with augmentation seeded
per draw (:class:`SeededDraws`); :func:`val_loader` gives one image a device.
"""
import os
import random

import numpy as np
from gluoncv.data.batchify import Append, Tuple
from mxnet import gluon

from gluonmine.data import (NonEmptyLabels, SyntheticVOCDetection, VOCFormatDetection,
                            make_synthetic_voc)

SYNTHETIC_ROOT = os.path.join('data', 'synthetic_voc')
DATASETS = ('synthetic', 'voc', 'coco')


def build_datasets(args, train=True):
    """(train, val, classes) for ``--dataset``; the synthetic one is made when missing.

    With ``train=False`` (evaluation only) the training set is not read: None.
    """
    root = os.path.expanduser(args.dataset_root)
    if args.dataset == 'synthetic':
        try:
            make_synthetic_voc(root)
        except ValueError:                  # another dataset there: never offer to remove it
            raise SystemExit('--dataset synthetic: {} holds another dataset than the synthetic '
                             'one this gluonmine makes; read VOC-format data with --dataset '
                             'voc, COCO with --dataset coco, or give the synthetic one a '
                             'folder of its own'.format(root))
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
