"""Inputs of other dtypes, and MXNet's mixed-precision conversion, for every public block."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.contrib import amp

from test_reliability import BLOCKS, Parent, build, call

LOSSES = ['MultiBoxLoss', 'RCNNHardExampleLoss']
SELECTIONS = sorted(set(BLOCKS) - set(LOSSES))


def outputs(block, arrays, seed=42):
    mx.random.seed(seed)
    out = block(*arrays)
    return list(out) if isinstance(out, (list, tuple)) else [out]


@pytest.mark.parametrize('dtype', ['float16', 'float64', 'int32'])
@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_other_dtypes_are_read_as_float32(name, dtype):
    # float16 predictions of a mixed-precision net, float64 from mx.nd.from_numpy,
    # integer labels: the float32 outputs of the same values, eager and hybridized
    values = [np.asarray(x).astype(dtype) for x in BLOCKS[name][1]]
    for hybrid in (False, True):
        want = outputs(build(name, hybrid), [nd.array(x, dtype='float32') for x in values])
        got = outputs(build(name, hybrid), [nd.array(x, dtype=dtype) for x in values])
        for g, w in zip(got, want):
            assert g.dtype == np.float32
            np.testing.assert_array_equal(g.asnumpy(), w.asnumpy())


@pytest.mark.parametrize('name', LOSSES)
def test_float16_predictions_get_float16_gradients_of_the_float32_loss(name):
    inputs = BLOCKS[name][1]
    grads = {}
    for dtype in ('float32', 'float16'):
        arrays = [nd.array(x, dtype='float32') for x in inputs]
        arrays[0] = nd.array(inputs[0], dtype=dtype)                # cls_pred
        arrays[0].attach_grad()
        with autograd.record():
            total = outputs(build(name, True), arrays)[0].sum()
        total.backward()
        assert arrays[0].grad.dtype == np.dtype(dtype)
        grads[dtype] = arrays[0].grad.asnumpy().astype('float32')
    assert np.abs(grads['float32']).sum() > 0
    # the loss itself ran in float32 on the float16-rounded logits
    np.testing.assert_allclose(grads['float16'], grads['float32'], rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize('name', SELECTIONS)
def test_bfloat16_conversion_keeps_every_selection(name):
    # amp.convert_hybrid_block runs the FullyConnected counts in bfloat16 on CPU:
    # the selections are unchanged
    good = BLOCKS[name][1]
    block = build(name, True)
    mx.random.seed(42)
    want = call(block, good)
    converted = amp.convert_hybrid_block(block, target_dtype='bfloat16', ctx=mx.cpu())
    mx.random.seed(42)
    got = call(converted, good)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize('name', SELECTIONS)
def test_float16_conversion_types_every_output_float32(name):
    # what a GPU would run (MXNet's CPU has no float16 FullyConnected): the
    # converted graph casts to float16 and infers float32 outputs
    good = BLOCKS[name][1]
    block = build(name, True)
    call(block, good)
    converted = amp.convert_hybrid_block(block, target_dtype='float16', ctx=mx.cpu())
    inputs, symbol = converted._cached_graph
    internals = symbol.get_internals().list_outputs()
    assert any('amp_cast' in o or 'amp_multicast' in o for o in internals)
    _, types, _ = symbol.infer_type(**{x.name: 'float32' for x in inputs})
    assert types == [np.float32] * len(types)


class _HalfPrecisionParent(Parent):
    """A float16 graph (``net.cast('float16')``, or mixed precision upstream) handing its
    float16 values to a gluonmine child block."""

    def hybrid_forward(self, F, *inputs):  # pylint: disable=arguments-differ
        return self.child(*[F.cast(x, 'float16') for x in inputs])


@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_a_child_block_computes_float16_symbols_in_float32(name):
    # in float16 the anchor and RoI indices above 2048 are not exact (and MXNet's CPU has
    # no float16 FullyConnected): the child casts its Symbols to float32 first, and
    # returns what it returns alone for the same (float16-rounded) values
    halved = [np.asarray(x).astype('float16').astype('float32') for x in BLOCKS[name][1]]
    want = outputs(build(name, True), [nd.array(x) for x in halved])
    parent = _HalfPrecisionParent(BLOCKS[name][0]())
    parent.initialize()
    parent.hybridize()
    got = outputs(parent, [nd.array(x) for x in halved])
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g.asnumpy(), w.asnumpy())
