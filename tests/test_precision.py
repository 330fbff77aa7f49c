"""Inputs of other dtypes, and MXNet's mixed precision, for every public block."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.contrib import amp

from gluonmine.models import tiny_faster_rcnn
from gluonmine.transforms import FasterRCNNTrainTransform
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


@pytest.mark.parametrize('dtype', ['bfloat16', 'float16'])
@pytest.mark.parametrize('name', SELECTIONS)
def test_mixed_precision_conversion_keeps_every_selection(name, dtype):
    # amp.convert_hybrid_block casts parts of the graph to the low precision (float16:
    # every graph; bfloat16's shorter lists leave some alone): each selection is
    # unchanged, in float32
    good = BLOCKS[name][1]
    block = build(name, True)
    mx.random.seed(42)
    want = call(block, good)
    converted = amp.convert_hybrid_block(block, target_dtype=dtype, ctx=mx.cpu())
    _, symbol = converted._cached_graph
    casts = [o for o in symbol.get_internals().list_outputs() if 'amp_' in o]
    assert casts or dtype == 'bfloat16'
    mx.random.seed(42)
    got = call(converted, good)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, w)


# GluonCV's --amp scripts call amp.init() first: from then on MXNet casts every
# FullyConnected and Convolution to float16, also in the data transforms, which run on
# CPU (whose MXNet has no float16 FullyConnected). The patch lasts the process.
AMP_INIT = """
import sys
import mxnet as mx
import numpy as np
from mxnet.contrib import amp
amp.init()
try:                            # the patch is live: the CPU's FullyConnected now fails
    mx.nd.FullyConnected(mx.nd.ones((1, 2)), mx.nd.ones((1, 2)), no_bias=True,
                         num_hidden=1).asnumpy()
    sys.exit('amp.init() changed nothing')
except mx.base.MXNetError:
    pass
sys.path.insert(0, {tests!r})
from test_precision import every_output
np.savez({out!r}, *every_output())
"""


def every_output():
    """The outputs of every block, eager then hybridized, then of FasterRCNNTrainTransform
    on one image: a list of arrays."""
    arrays = []
    for name in sorted(BLOCKS):
        for hybrid in (False, True):
            mx.random.seed(42)
            arrays += call(build(name, hybrid), BLOCKS[name][1])
    net = tiny_faster_rcnn(['a', 'b'])
    net.initialize()
    transform = FasterRCNNTrainTransform(short=64, max_size=96, net=net, flip_p=0.)
    image = nd.array(np.random.RandomState(0).randint(0, 255, (60, 80, 3)), dtype='uint8')
    label = np.array([[5, 6, 40, 45, 0, 0], [30, 12, 75, 55, 1, 0]], dtype='float32')
    mx.random.seed(42)
    image, boxes, cls_targets, box_targets, box_masks = transform(image, label)
    return arrays + [image.asnumpy(), boxes, *cls_targets, *box_targets, *box_masks]


def test_every_block_and_the_transform_select_the_same_under_amp_init(tmp_path):
    out = str(tmp_path / 'amp.npz')
    code = AMP_INIT.format(tests=os.path.dirname(os.path.abspath(__file__)), out=out)
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(out) as saved:
        got = [saved['arr_{}'.format(i)] for i in range(len(saved.files))]
    want = every_output()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


class _HalfPrecisionParent(Parent):
    """A float16 graph (``net.cast('float16')``, or mixed precision upstream) handing its
    float16 values to a gluonmine child block."""

    def hybrid_forward(self, F, *inputs):  # pylint: disable=arguments-differ
        return self.child(*[F.cast(x, 'float16') for x in inputs])


@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_a_child_block_computes_float16_symbols_in_float32(name):
    # in float16 the anchor and RoI indices above 2048 are not exact: the child casts its
    # Symbols to float32 first, and returns what it returns alone for the same
    # (float16-rounded) values
    halved = [np.asarray(x).astype('float16').astype('float32') for x in BLOCKS[name][1]]
    want = outputs(build(name, True), [nd.array(x) for x in halved])
    parent = _HalfPrecisionParent(BLOCKS[name][0]())
    parent.initialize()
    parent.hybridize()
    got = outputs(parent, [nd.array(x) for x in halved])
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g.asnumpy(), w.asnumpy())
