"""Hard example mining: gluonmine's miners against GluonCV's OHEMSampler and a NumPy OHEM.

OHEMSampler: GluonCV's (a Block with NumPy in the middle) against gluonmine's
hybridized drop-in, on one SSD300 batch: 32 images, the 8732 SSD300 anchors,
21 classes, 1-10 ground truths an image padded to 10, matches from GluonCV's
own SSD matcher, random logits. The 3-D ious is what GluonCV's
``SSDTargetGenerator`` passes; the (B, N) row gives each anchor's best IoU.

HardExampleMiner: the OHEM selection of Shrivastava et al. (2 images, 2000
RoIs an image over a 600x1000 image, ranking loss 0.05 cls + 0.06 loc, greedy
NMS at 0.7, 64 per image) against the same selection in plain NumPy: a stable
sort, then the usual vectorised greedy NMS loop per image, stopping at 64.

Both comparisons first check that the outputs are identical. Times are the
fastest of 5 rounds that take turns between the two sides (other processes
only ever add time).

    python recipes/benchmark.py --only mining
    MXNET_EXEC_BULK_EXEC_INFERENCE=0 python recipes/bench_mining.py --profile
"""
import argparse

import mxnet as mx
import numpy as np
from gluoncv.nn.matcher import BipartiteMatcher, CompositeMatcher, MaximumMatcher
from gluoncv.nn.sampler import OHEMSampler as GluonCVOHEMSampler

from _timing import fastest, hybridized, speed_columns
from gluonmine.ohem import HardExampleMiner, OHEMSampler

NAME = 'mining'
TITLE = 'Hard example mining, per batch'
SSD300 = dict(features=(38, 19, 10, 5, 3, 1), steps=(8, 16, 32, 64, 100, 300),
              sizes=(30, 60, 111, 162, 213, 264, 315),
              ratios=((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)))


def ssd300_anchors():
    """The 8732 SSD300 anchors (Liu et al. 2016), corners normalised to [0, 1]: (N, 4)."""
    boxes = []
    for k, (size, step) in enumerate(zip(SSD300['features'], SSD300['steps'])):
        small, big = SSD300['sizes'][k] / 300., SSD300['sizes'][k + 1] / 300.
        shapes = [(small, small), (np.sqrt(small * big),) * 2]
        for r in SSD300['ratios'][k]:
            shapes += [(small * np.sqrt(r), small / np.sqrt(r)),
                       (small / np.sqrt(r), small * np.sqrt(r))]
        for i in range(size):
            for j in range(size):
                cx, cy = (j + 0.5) * step / 300., (i + 0.5) * step / 300.
                boxes += [(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) for w, h in shapes]
    return np.array(boxes, 'float32')


def ssd_batch(batch, classes=21, max_gt=10, seed=0):
    """(matches, logits, ious) as GluonCV's SSDTargetGenerator hands them to its sampler."""
    rng = np.random.RandomState(seed)
    anchors = mx.nd.array(ssd300_anchors())
    gt = -np.ones((batch, max_gt, 4), 'float32')
    for b in range(batch):
        n = rng.randint(1, max_gt + 1)
        wh = rng.uniform(0.1, 0.7, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * (1 - wh)
        gt[b, :n] = np.concatenate([xy, xy + wh], axis=1)
    ious = mx.nd.transpose(mx.nd.contrib.box_iou(anchors, mx.nd.array(gt)), (1, 0, 2))
    matches = CompositeMatcher([BipartiteMatcher(share_max=False), MaximumMatcher(0.5)])(ious)
    logits = mx.nd.array(rng.randn(batch, anchors.shape[0], classes).astype('float32'))
    return matches, logits, ious


def numpy_ohem(cls_losses, loc_losses, boxes, samples, k=64, thresh=0.7, weights=(0.05, 0.06)):
    """HardExampleMiner's default selection in NumPy: (indices (B, k), mask (B, N))."""
    batch, n = samples.shape
    indices, mask = -np.ones((batch, k), 'float32'), np.zeros((batch, n), 'float32')
    for b in range(batch):
        loss = cls_losses[b] * np.float32(weights[0]) + loc_losses[b] * np.float32(weights[1])
        usable = (samples[b] != 0) & np.isfinite(cls_losses[b]) & np.isfinite(loc_losses[b])
        usable &= np.isfinite(loss) & np.isfinite(boxes[b]).all(axis=1)
        candidates = np.flatnonzero(usable)
        order = candidates[np.lexsort((candidates, -loss[candidates]))]   # stable: lower index
        x1, y1, x2, y2 = boxes[b].T
        area = np.where((x2 >= x1) & (y2 >= y1), (x2 - x1) * (y2 - y1), 0)
        keep = []
        while order.size and len(keep) < k:
            i, rest = order[0], order[1:]
            keep.append(i)
            w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
            h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
            overlap = w * h / (area[i] + area[rest] - w * h)
            order = rest[~(overlap > np.float32(thresh))]
        indices[b, :len(keep)] = keep
        mask[b, keep] = 1
    return indices, mask


def ohem_batch(batch=2, rois=2000, seed=0):
    """Per-RoI losses, RoIs over a 600x1000 image and labels (25% positive): NumPy arrays."""
    rng = np.random.RandomState(seed)
    wh = rng.uniform(16, 400, (batch, rois, 2))
    xy = rng.uniform(0, 1, (batch, rois, 2)) * ([1000, 600] - wh)
    boxes = np.concatenate([xy, xy + wh], axis=2).astype('float32')
    cls_losses = rng.exponential(1., (batch, rois)).astype('float32')
    loc_losses = rng.exponential(1., (batch, rois)).astype('float32')
    samples = np.where(rng.rand(batch, rois) < 0.25, 1., -1.).astype('float32')
    return cls_losses, loc_losses, boxes, samples


def row(what, setting, reference, t_reference, t_ours):
    return dict(block=what, setting=setting, reference=reference,
                **speed_columns(t_reference, t_ours, 'reference'))


def run(quick):
    repeat, batch = (2, 8) if quick else (5, 32)
    rows = []
    matches, logits, ious = ssd_batch(batch)
    theirs, ours = GluonCVOHEMSampler(3), hybridized(OHEMSampler(3))
    for name, iou_input in [('(B, N, M) ious', ious), ('(B, N) best IoU', ious.max(axis=2))]:
        want = theirs(matches, logits, iou_input).asnumpy()
        assert (ours(matches, logits, iou_input).asnumpy() == want).all(), 'outputs differ'
        t_theirs, t_ours = fastest([lambda: theirs(matches, logits, iou_input),
                                    lambda: ours(matches, logits, iou_input)], repeat)
        setting = 'B={}, 8732 anchors, 21 classes, ratio 3, {}'.format(batch, name)
        rows.append(row('OHEMSampler', setting, 'GluonCV OHEMSampler', t_theirs, t_ours))

    arrays = ohem_batch()
    inputs = [mx.nd.array(x) for x in arrays]
    miner = hybridized(HardExampleMiner(64, 0.7))
    want = numpy_ohem(*arrays)
    got = [o.asnumpy() for o in miner(*inputs)]
    assert all((g == w).all() for g, w in zip(got, want)), 'outputs differ'
    t_numpy, t_ours = fastest([lambda: numpy_ohem(*arrays), lambda: miner(*inputs)], 4 * repeat)
    rows.append(row('HardExampleMiner', 'B=2, 2000 RoIs, NMS 0.7, 64 per image',
                    'NumPy greedy NMS loop', t_numpy, t_ours))
    columns = ['block', 'setting', 'reference', 'reference_ms', 'gluonmine_ms', 'speedup']
    notes = ['Identical outputs checked before timing. gluonmine runs hybridized '
             '(static_alloc, static_shape); times are the fastest of 5 interleaved rounds. '
             'Per-operator profile: `MXNET_EXEC_BULK_EXEC_INFERENCE=0 python '
             'recipes/bench_mining.py --profile`.']
    return columns, rows, notes


def profile(calls=10):
    """Print MXNet's aggregate per-operator times for the two gluonmine blocks."""
    matches, logits, ious = ssd_batch(32)
    arrays = ohem_batch()
    jobs = [('OHEMSampler', hybridized(OHEMSampler(3)), [matches, logits, ious]),
            ('HardExampleMiner', hybridized(HardExampleMiner(64, 0.7)),
             [mx.nd.array(x) for x in arrays])]
    for name, block, inputs in jobs:
        for _ in range(3):
            block(*inputs)
        mx.nd.waitall()
        mx.profiler.set_config(profile_imperative=True, profile_symbolic=True,
                               aggregate_stats=True)
        mx.profiler.set_state('run')
        for _ in range(calls):
            block(*inputs)
        mx.nd.waitall()
        mx.profiler.set_state('stop')
        print('## {} ({} calls; divide totals by {})'.format(name, calls, calls))
        print(mx.profiler.dumps(reset=True, format='table', sort_by='total', ascending=False))


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--profile', action='store_true', help='per-operator times')
    if parser.parse_args().profile:
        profile()
    else:
        print(run(quick=False))
