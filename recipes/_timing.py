"""Timing helpers shared by the benchmark sections."""
import time

import mxnet as mx


def seconds_per_call(fn, repeat=10, warmup=2):
    """Mean wall time of ``fn()`` in seconds, waiting for MXNet's engine to finish."""
    for _ in range(warmup):
        fn()
    mx.nd.waitall()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    mx.nd.waitall()
    return (time.perf_counter() - start) / repeat


def fastest(fns, repeat, rounds=5, warmup=2):
    """Seconds per call of each function: the fastest of ``rounds`` timing rounds.

    The rounds take turns between the functions, so that a busy spell of the
    machine (other processes only ever add time) does not fall on one of them
    only. fns: a list of functions -> a list of seconds, or a dict -> a dict.
    """
    keys = list(fns) if isinstance(fns, dict) else list(range(len(fns)))
    best = {key: float('inf') for key in keys}
    for _ in range(rounds):
        for key in keys:
            best[key] = min(best[key], seconds_per_call(fns[key], repeat, warmup))
    return best if isinstance(fns, dict) else [best[key] for key in keys]


def speed_columns(t_reference, t_ours, reference='gluoncv'):
    """A table row's timing columns: ``REFERENCE_ms``, ``gluonmine_ms`` and ``speedup``."""
    return {reference + '_ms': round(t_reference * 1e3, 2), 'gluonmine_ms': round(t_ours * 1e3, 2),
            'speedup': '{:.1f}x'.format(t_reference / t_ours)}


def hybridized(block):
    """The block, hybridized the way a training loop would run it."""
    block.hybridize(static_alloc=True, static_shape=True)
    return block
