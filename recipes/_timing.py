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


def hybridized(block):
    """The block, hybridized the way a training loop would run it."""
    block.hybridize(static_alloc=True, static_shape=True)
    return block
