"""Shared fixtures: seeds, the three ways a block runs, a host-sync guard, an errno that
MXNet misreads, and the miners' quota rule."""
import contextlib
import ctypes
import errno
import json
import math
import os
import random
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon, nd
from numpy.testing import assert_array_equal

MODES = ('eager', 'hybrid', 'exported')


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state."""
    mx.random.seed(0)
    np.random.seed(0)
    random.seed(0)


def export_and_import(block, tmpdir, num_inputs):
    """Export a hybridized block (already called once) and load it back as a SymbolBlock."""
    os.makedirs(str(tmpdir), exist_ok=True)
    prefix = os.path.join(str(tmpdir), 'block')
    block.export(prefix)
    names = ['data{}'.format(i) for i in range(num_inputs)] if num_inputs > 1 else ['data']
    with open(prefix + '-symbol.json') as f:
        graph = json.load(f)
    params = prefix + '-0000.params' if block.collect_params() else None
    imported = gluon.SymbolBlock.imports(prefix + '-symbol.json', names, params)
    return imported, graph


def run_in_mode(make_block, inputs, mode, tmpdir, seed=7):
    """Run a fresh block on inputs in one mode, after seeding ``mx.random``.

    Returns the outputs as a tuple of numpy arrays (and, for 'exported', the
    symbol graph as a third item via ``run_in_mode.graph``).
    """
    block = make_block()
    block.initialize()
    if mode != 'eager':
        block.hybridize()
    if mode == 'exported':
        mx.random.seed(seed)
        block(*inputs)
        block, run_in_mode.graph = export_and_import(block, tmpdir, len(inputs))
    mx.random.seed(seed)
    out = block(*inputs)
    out = out if isinstance(out, (list, tuple)) else (out,)
    return tuple(o.asnumpy() for o in out)


@pytest.fixture
def modes(tmp_path):
    """``modes(make_block, inputs)`` -> {mode: outputs} for eager, hybrid and exported runs."""
    def run(make_block, inputs):
        return {mode: run_in_mode(make_block, inputs, mode, tmp_path / mode) for mode in MODES}
    return run


def assert_same_outputs(results):
    """All modes gave identical outputs."""
    reference = results['eager']
    for mode, outputs in results.items():
        assert len(outputs) == len(reference), mode
        for got, want in zip(outputs, reference):
            np.testing.assert_array_equal(got, want, err_msg=mode)


@contextlib.contextmanager
def no_host_sync():
    """Make ``NDArray.asnumpy`` and ``asscalar`` raise inside the block."""
    def refuse(*args, **kwargs):
        raise AssertionError('host round trip during forward')
    saved = mx.nd.NDArray.asnumpy, mx.nd.NDArray.asscalar
    mx.nd.NDArray.asnumpy, mx.nd.NDArray.asscalar = refuse, refuse
    try:
        yield
    finally:
        mx.nd.NDArray.asnumpy, mx.nd.NDArray.asscalar = saved


_ERRNO = ctypes.CDLL(None).__errno_location       # glibc: this thread's errno
_ERRNO.restype = ctypes.POINTER(ctypes.c_int)


class _ErrnoAtErange:
    """MXNet's C library, each of whose calls starts with errno = ERANGE."""

    def __init__(self, lib):
        self._lib = lib

    def __getattr__(self, name):
        function = getattr(self._lib, name)

        def call(*args):
            _ERRNO()[0] = errno.ERANGE
            return function(*args)
        return call


@contextlib.contextmanager
def errno_left_at_erange():
    """Start every MXNet C call with errno at ERANGE, as earlier C code may leave it.

    MXNet 1.9.1 then reads a scalar argument of +inf as out of range (see
    ``gluonmine._ops.full_like``).
    """
    lib = mx.base._LIB
    modules = [module for name, module in list(sys.modules.items())
               if name.startswith('mxnet') and getattr(module, '_LIB', None) is lib]
    for module in modules:
        module._LIB = _ErrnoAtErange(lib)
    try:
        yield
    finally:
        for module in modules:
            module._LIB = lib


def forward_without_host_sync(block, inputs):
    """Run block(*inputs) eagerly and hybridized with the guard on; return numpy outputs."""
    results = []
    for hybrid in (False, True):
        if hybrid:
            block.hybridize()
        with no_host_sync():
            out = block(*inputs)
            out = out if isinstance(out, (list, tuple)) else (out,)
            mx.nd.waitall()
        results.append(tuple(o.asnumpy() for o in out))
    return results


def float32_quota(ratio, count, minimum):
    """``floor(max(minimum, ratio * count))``, the product in float32 as the miners take
    it; an overflow to inf is no limit (``sys.maxsize``)."""
    with np.errstate(over='ignore'):
        product = np.float32(ratio) * np.float32(count)
    return math.floor(max(minimum, product)) if np.isfinite(product) else sys.maxsize


def random_boxes(rng, n, size=100., min_side=2., max_side=40.):
    """n random corner boxes inside a size x size image, float32 (n, 4)."""
    xy = rng.uniform(0, size - max_side, size=(n, 2))
    wh = rng.uniform(min_side, max_side, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype('float32')


class Wrap(gluon.HybridBlock):
    """Runs a primitive inside a HybridBlock, so it is also built with F = mx.sym."""

    def __init__(self, fn):
        super(Wrap, self).__init__()
        self._fn = fn

    def hybrid_forward(self, F, *args):  # pylint: disable=arguments-differ
        return self._fn(F, *args)


def pair_counts(subsets, n):
    """How often each of the n * (n - 1) / 2 pairs of candidates 0..n-1 was drawn together,
    over ``subsets`` (an iterable of index arrays): a uniform subset sampler draws every
    pair equally often, one that favours neighbours or fixed groups does not."""
    counts = np.zeros((n, n), int)
    for subset in subsets:
        chosen = np.zeros(n, bool)
        chosen[np.asarray(subset, int)] = True
        counts += np.outer(chosen, chosen)
    return counts[np.triu_indices(n, 1)]


def both(fn, *args):
    """fn(F, *args) eagerly and hybridized: outputs as lists of numpy arrays, both equal."""
    outputs = []
    for hybrid in (False, True):
        block = Wrap(fn)
        if hybrid:
            block.hybridize()
        out = block(*[nd.array(a) for a in args])
        outputs.append([o.asnumpy() for o in (out if isinstance(out, (list, tuple)) else [out])])
    for got, want in zip(*outputs):
        assert_array_equal(got, want)
    return outputs[0]


def assert_run_outputs(prefix, metrics, losses, iterations):
    """A recipe's run wrote ``PREFIX.{params,json,png,log}``: the JSON equals the returned
    ``metrics``, holds one finite value per loss and iteration and one epoch record, and
    the plot is a PNG. Returns the JSON."""
    for ext in ('params', 'json', 'png', 'log'):
        assert os.path.getsize('{}.{}'.format(prefix, ext)) > 0
    with open('{}.png'.format(prefix), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with open('{}.json'.format(prefix)) as f:
        written = json.load(f)
    assert written == json.loads(json.dumps(metrics))
    assert set(written) == {'recipe', 'args', 'classes', 'rank', 'num_workers', 'loss_curve',
                            'epochs', 'final'}
    assert written['classes'] == ['disc', 'square', 'triangle']
    assert sorted(written['loss_curve']) == sorted(losses)
    assert all(len(v) == iterations and np.isfinite(v).all()
               for v in written['loss_curve'].values())
    epoch, = written['epochs']
    assert set(epoch) == {'epoch', 'iterations', 'seconds', 'seconds_per_iteration', 'losses',
                          'map', 'sampler'}
    assert epoch['iterations'] == iterations and epoch['seconds_per_iteration'] > 0
    assert set(written['final']['map']) == {'disc', 'square', 'triangle', 'mAP'}
    return written


@pytest.fixture(scope='session')
def voc_root(tmp_path_factory):
    """The synthetic VOC dataset (seed 0), made once for the recipes' tests: its folder."""
    from gluonmine.data import make_synthetic_voc   # pylint: disable=import-outside-toplevel
    path = str(tmp_path_factory.mktemp('synthetic_voc'))
    make_synthetic_voc(path)
    return path


@pytest.fixture
def cpu_devices(monkeypatch):
    """The recipes' ``--gpus`` on a machine without GPUs: GPU id i becomes ``mx.cpu(i)``,
    a device of its own to MXNet (arrays on two of them do not mix).

    Returns a list that gets, at each evaluation in a run, the names of the net's
    parameters whose copies differ between devices."""
    import evaluation                   # pylint: disable=import-outside-toplevel
    import parallel                     # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(parallel, 'contexts', lambda gpus: [mx.cpu(i) for i in gpus] or [mx.cpu()])
    differing, evaluate = [], evaluation.evaluate

    def differs(param):
        first, *others = [param.data(ctx).asnumpy() for ctx in param.list_ctx()]
        return any(not np.array_equal(first, other) for other in others)

    def checked(net, *args):
        differing.append(sorted(name for name, p in net.collect_params().items() if differs(p)))
        return evaluate(net, *args)
    monkeypatch.setattr(evaluation, 'evaluate', checked)
    return differing
