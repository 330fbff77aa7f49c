#!/usr/bin/env python
"""Long runs: every gluonmine block, hybridized with static_alloc, on changing inputs.

Each block runs ``--iterations`` times on fresh random inputs (new values every
call, and a new batch shape every ``--reshape-every`` calls, cycling through a few
sizes), while the process's resident memory is sampled. Memory must not grow: the
resident size after the warm-up is compared with the size at the end, and the
script exits non-zero when any block grew by more than ``--tolerance-mb``.
``--out`` keeps the table and every reading (one each 50 calls) as JSON, and a
figure next to it (``runs/soak.png``) draws each block's growth over its calls.
Each block's row is printed, and the JSON rewritten whole, as soon as it
finishes; the figure is drawn after the last block (or at Ctrl-C, of the
finished ones), so plotting's memory is in no block's readings.

    python recipes/soak.py                          # 10,000 iterations of every block
    python recipes/soak.py --only rpn_generator --iterations 2000
"""
import argparse
import os
import sys

import mxnet as mx
import numpy as np
from tqdm import tqdm

import entry
import plots

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

# pylint: disable=wrong-import-position
from gluonmine import (HardExampleMiner, HardNegativeMiner, OHEMSampler,  # noqa: E402
                       QuotaSampler, RCNNTargetSampler, RPNTargetGenerator, RPNTargetSampler)


def resident_mb():
    """Resident set size of this process in MiB (Linux /proc)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.
    return float('nan')


def _boxes(rng, shape, size=600.):
    xy = rng.uniform(0, size * 0.8, shape + (2,))
    return np.concatenate([xy, xy + rng.uniform(8, size * 0.2, shape + (2,))], -1)


def _ious(rng, batch, n, m):
    ious = rng.uniform(0, 1, (batch, n, m)) ** 3
    ious[rng.uniform(size=(batch, n)) < 0.1] = -1
    return [ious]


def _generator_inputs(rng, batch, n, m):
    gt = _boxes(rng, (batch, m))
    gt[:, m // 2:][rng.uniform(size=(batch, m - m // 2)) < 0.5] = -1
    return [gt, _boxes(rng, (n,)), np.tile([[600., 800.]], (batch, 1))]


def _rcnn_inputs(rng, batch, n, m):
    gt = _boxes(rng, (batch, m))
    gt[:, m // 2:] = -1                                         # padding rows
    scores = rng.uniform(size=(batch, n))
    scores[:, -n // 10:] = -1                                   # padding proposals
    return [_boxes(rng, (batch, n)), scores, gt]


def _mining_inputs(rng, batch, n, _):
    losses = rng.exponential(size=(batch, n))
    return [losses, rng.exponential(size=(batch, n)), _boxes(rng, (batch, n)),
            rng.choice([-1., 0., 1.], size=(batch, n), p=[0.7, 0.1, 0.2])]


def _ssd_inputs(rng, batch, n, m):
    matches = np.where(rng.uniform(size=(batch, n)) < 0.02, 0., -1.)
    return [matches, rng.normal(size=(batch, n, 21)), rng.uniform(size=(batch, n, m)) ** 3]


#: Calls between two memory readings of a block.
READ_EVERY = 50

# name: (block factory, input factory(rng, batch, n, m), sizes cycled through)
BLOCKS = {
    'rpn_sampler': (RPNTargetSampler, _ious, [(2, 4000, 8), (2, 3000, 12), (1, 5000, 4)]),
    'quota_sampler': (QuotaSampler, _ious, [(2, 2000, 20), (4, 1000, 10)]),
    'rpn_generator': (RPNTargetGenerator, _generator_inputs,
                      [(2, 4000, 8), (2, 3000, 12), (1, 5000, 4)]),
    'rcnn_sampler': (lambda: RCNNTargetSampler(2, 2000, 128, 0.5, 0.25, 100), _rcnn_inputs,
                     [(2, 2000, 20), (2, 1500, 40)]),
    'hard_example_miner': (HardExampleMiner, _mining_inputs, [(2, 2000, 0), (2, 1000, 0)]),
    'hard_negative_miner': (HardNegativeMiner, lambda rng, b, n, m: _mining_inputs(
        rng, b, n, m)[::3], [(8, 8732, 0), (4, 5000, 0)]),
    'ohem_sampler': (lambda: OHEMSampler(3), _ssd_inputs, [(8, 8732, 8), (4, 5000, 4)]),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--iterations', type=int, default=10000, help='calls per block')
    parser.add_argument('--warmup', type=int,
                        help='calls before the reading that growth is measured from '
                             '(None: 200, or a tenth of --iterations when that is fewer)')
    parser.add_argument('--reshape-every', type=int, default=500,
                        help='calls between changes of input shape')
    parser.add_argument('--only', default='all', help='comma-separated block names')
    parser.add_argument('--tolerance-mb', type=float, default=20.,
                        help='largest resident-memory growth accepted per block')
    parser.add_argument('--seed', type=int, default=0, help='seed of the inputs and draws')
    parser.add_argument('--out', default=os.path.join('runs', 'soak.json'),
                        help='where the table and the memory readings are written as JSON; '
                             "the memory figure goes next to it (.png); '' for neither")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.reshape_every < 1:
        parser.error('--iterations and --reshape-every take a number >= 1')
    if args.warmup is None:
        args.warmup = min(200, args.iterations // 10)
    if not 0 <= args.warmup < args.iterations:
        parser.error('--warmup takes a number from 0 to --iterations - 1, got {}'.format(
            args.warmup))
    if args.out and not args.out.endswith('.json'):
        parser.error('--out names a .json file (the figure goes next to it), got {!r}'.format(
            args.out))
    return args


def soak(name, make_block, make_inputs, sizes, args):
    """Run one block; returns a report row, its memory readings included.

    ``memory`` holds ``[call, MiB]`` pairs: the resident size after every
    :data:`READ_EVERY` calls (after waiting for MXNet's engine) and after the last.
    """
    rng = np.random.RandomState(args.seed)
    block = make_block()
    block.initialize()
    block.hybridize(static_alloc=True)
    start, memory = None, []
    progress = tqdm(range(args.iterations), desc=name, unit='call', leave=False, disable=None,
                    dynamic_ncols=True)                 # hidden when stderr is no terminal
    for i in progress:
        size = sizes[(i // args.reshape_every) % len(sizes)]
        outputs = block(*[mx.nd.array(x) for x in make_inputs(rng, *size)])
        if i == args.warmup:                            # < iterations: parse_args checks
            mx.nd.waitall()
            start = resident_mb()
        if (i + 1) % READ_EVERY == 0 or i == args.iterations - 1:
            mx.nd.waitall()
            memory.append([i + 1, round(resident_mb(), 2)])
            progress.set_postfix(rss_mb='{:.0f}'.format(memory[-1][1]))
        del outputs
    end = memory[-1][1]
    return dict(block=name, iterations=args.iterations, rss_after_warmup_mb=round(start, 1),
                rss_end_mb=round(end, 1), growth_mb=round(end - start, 1) + 0.,  # not -0.0
                ok=end - start <= args.tolerance_mb, memory=memory)


def main(argv=None):
    args = parse_args(argv)
    names = [n for n in args.only.split(',') if n not in ('', 'all')] or list(BLOCKS)
    unknown = [n for n in names if n not in BLOCKS]
    if unknown:
        raise SystemExit('unknown block(s) {}; known: {}'.format(', '.join(unknown),
                                                                ', '.join(BLOCKS)))
    mx.random.seed(args.seed)
    print('| block | iterations | RSS after warm-up (MiB) | RSS at end (MiB) | growth (MiB) |')
    print('|---|---|---|---|---|')
    rows = []
    try:
        for name in names:
            rows.append(soak(name, *BLOCKS[name], args))
            print('| {block} | {iterations} | {rss_after_warmup_mb} | {rss_end_mb} | '
                  '{growth_mb} |'.format(**rows[-1]), flush=True)
            if args.out:
                entry.write_json(args.out, rows)
    except KeyboardInterrupt as interrupt:
        print('interrupted in block {}: {} finished block(s){}'.format(
            name, len(rows), ' kept in {} and {}'.format(args.out, figure_path(args.out))
            if rows and args.out else ''), file=sys.stderr)
        interrupt.logged = True         # for entry.run_script
        raise
    finally:
        if rows and args.out:           # drawn after the blocks: no plotting in their readings
            plots.plot_soak(figure_path(args.out), rows, args.warmup, args.reshape_every,
                            args.tolerance_mb)
    failed = [row['block'] for row in rows if not row['ok']]
    if failed:
        raise SystemExit('memory grew by more than {} MiB: {}'.format(
            args.tolerance_mb, ', '.join(failed)))


def figure_path(out):
    """The memory figure's path: PATH.png for ``--out`` PATH.json."""
    return out[:-len('.json')] + '.png'


if __name__ == '__main__':
    entry.run_script(main, 'interrupted before the first block')
