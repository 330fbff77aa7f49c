"""Every graph gluonmine builds holds only operators that MXNet implements for GPU.

No GPU runs here, so this is checked on the graphs themselves: every block, in
every input layout and option that changes its graph, hybridized alone and as a
child of another block, and the three graphs of ``OHEMFasterRCNN``. Each
operator name in them must be one whose GPU kernel was found in MXNet's source.
"""
import json

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd

from gluonmine import (HardExampleMiner, OHEMSampler, QuotaSampler, RCNNTargetSampler,
                       RPNTargetGenerator, RPNTargetSampler)
from gluonmine.rcnn_ohem import OHEMFasterRCNN
from test_rcnn import GT_BOXES, GT_LABELS
from test_rcnn_ohem import images, tiny_net
from test_reliability import (BLOCKS, BOXES, IOUS, LOSS, OTHER_LAYOUTS, SAMPLES, Parent,
                              call)

# Operator (as the "op" of a symbol file): the file under MXNet's src/operator/ whose
# 1.x source registers its GPU kernel (``FCompute<gpu>``; SliceChannel: ``CreateOp<gpu>``),
# read in apache/mxnet's history (no stored copy is the 1.9.1 tag itself). Entries marked
# "inferred": the registration was seen only in a copy of unknown commit, or the file
# moved in a refactor. An operator not listed needs that check before it is added.
GPU_KERNELS = {
    'Activation': 'nn/activation.cu',
    'BatchNorm': 'nn/batch_norm.cu',
    'BlockGrad': 'tensor/elemwise_unary_op_basic.cu',
    'Cast': 'tensor/elemwise_unary_op_basic.cu',
    'Concat': 'nn/concat.cu',
    'Convolution': 'nn/convolution.cu',
    'FullyConnected': 'nn/fully_connected.cu',
    'Pooling': 'nn/pooling.cu',                     # NHWC layout too (PR #13749, 2019)
    'Reshape': 'tensor/matrix_op.cu',
    'SliceChannel': 'slice_channel.cu',
    '_contrib_AdaptiveAvgPooling2D': 'contrib/adaptive_avg_pooling.cu',
    '_contrib_ROIAlign': 'contrib/roi_align.cu',
    '_contrib_arange_like': 'tensor/init_op.cu',    # inferred: PR #15400, 2019
    '_contrib_box_decode': 'contrib/bounding_box.cu',
    '_contrib_box_iou': 'contrib/bounding_box.cu',
    '_contrib_box_nms': 'contrib/bounding_box.cu',
    '_contrib_index_copy': 'contrib/index_copy.cu',
    '_div_scalar': 'tensor/elemwise_binary_scalar_op_basic.cu',
    '_equal': 'tensor/elemwise_binary_op_logic.cu',
    '_equal_scalar': 'tensor/elemwise_binary_scalar_op_logic.cu',
    '_greater': 'tensor/elemwise_binary_op_logic.cu',
    '_greater_equal_scalar': 'tensor/elemwise_binary_scalar_op_logic.cu',
    '_greater_scalar': 'tensor/elemwise_binary_scalar_op_logic.cu',
    '_lesser_scalar': 'tensor/elemwise_binary_scalar_op_logic.cu',
    '_linalg_gemm2': 'tensor/la_op.cu',
    '_maximum_scalar': 'tensor/elemwise_binary_scalar_op_extended.cu',
    '_minimum_scalar': 'tensor/elemwise_binary_scalar_op_extended.cu',
    '_minus_scalar': 'tensor/elemwise_binary_scalar_op_basic.cu',
    '_mul_scalar': 'tensor/elemwise_binary_scalar_op_basic.cu',
    '_not_equal': 'tensor/elemwise_binary_op_logic.cu',
    '_not_equal_scalar': 'tensor/elemwise_binary_scalar_op_logic.cu',
    '_np_cumsum': 'numpy/np_cumsum.cu',
    '_plus_scalar': 'tensor/elemwise_binary_scalar_op_basic.cu',
    '_random_uniform_like': 'random/sample_op.cu',  # inferred
    '_rminus_scalar': 'tensor/elemwise_binary_scalar_op_basic.cu',
    'abs': 'tensor/elemwise_unary_op_basic.cu',
    'amp_cast': 'tensor/amp_cast.cu',
    'amp_multicast': 'tensor/amp_cast.cu',           # in GluonCV's box decoder
    'argmax': 'tensor/broadcast_reduce_op_index.cu',
    'argsort': 'tensor/ordering_op.cu',
    'broadcast_add': 'tensor/elemwise_binary_broadcast_op_basic.cu',
    'broadcast_axis': 'tensor/broadcast_reduce_op_value.cu',
    'broadcast_div': 'tensor/elemwise_binary_broadcast_op_basic.cu',
    'broadcast_equal': 'tensor/elemwise_binary_broadcast_op_logic.cu',
    'broadcast_greater': 'tensor/elemwise_binary_broadcast_op_logic.cu',
    'broadcast_greater_equal': 'tensor/elemwise_binary_broadcast_op_logic.cu',
    'broadcast_lesser': 'tensor/elemwise_binary_broadcast_op_logic.cu',
    'broadcast_lesser_equal': 'tensor/elemwise_binary_broadcast_op_logic.cu',
    'broadcast_like': 'tensor/broadcast_reduce_op_value.cu',  # inferred
    'broadcast_maximum': 'tensor/elemwise_binary_broadcast_op_extended.cu',
    'broadcast_minimum': 'tensor/elemwise_binary_broadcast_op_extended.cu',
    'broadcast_mul': 'tensor/elemwise_binary_broadcast_op_basic.cu',
    'clip': 'tensor/matrix_op.cu',
    'dot': 'tensor/dot.cu',
    'elemwise_add': 'tensor/elemwise_binary_op_basic.cu',
    'elemwise_div': 'tensor/elemwise_binary_op_basic.cu',
    'elemwise_mul': 'tensor/elemwise_binary_op_basic.cu',
    'elemwise_sub': 'tensor/elemwise_binary_op_basic.cu',
    'expand_dims': 'tensor/matrix_op.cu',
    'floor': 'tensor/elemwise_unary_op_basic.cu',
    'gather_nd': 'tensor/indexing_op.cu',
    'log': 'tensor/elemwise_unary_op_logexp.cu',
    'log_softmax': 'nn/log_softmax.cu',
    'min': 'tensor/broadcast_reduce_minmax_value.cu',  # file inferred
    'one_hot': 'tensor/indexing_op.cu',
    'ones_like': 'tensor/init_op.cu',
    'pick': 'tensor/broadcast_reduce_op_index.cu',
    'relu': 'tensor/elemwise_unary_op_basic.cu',
    'reshape_like': 'tensor/elemwise_unary_op_basic.cu',
    'reverse': 'tensor/matrix_op.cu',
    'shape_array': 'tensor/elemwise_unary_op_basic.cu',
    'sigmoid': 'tensor/elemwise_unary_op_basic.cu',
    'slice': 'tensor/matrix_op.cu',
    'slice_axis': 'tensor/matrix_op.cu',
    'slice_like': 'tensor/matrix_op.cu',
    'softmax': 'nn/softmax.cu',
    'sort': 'tensor/ordering_op.cu',
    'square': 'tensor/elemwise_unary_op_pow.cu',
    'stack': 'tensor/matrix_op.cu',
    'sum': 'tensor/broadcast_reduce_sum_value.cu',  # file inferred
    'take': 'tensor/indexing_op.cu',
    'tile': 'tensor/matrix_op.cu',
    'topk': 'tensor/ordering_op.cu',
    'transpose': 'tensor/matrix_op.cu',
    'where': 'tensor/control_flow_op.cu',
    'zeros_like': 'tensor/init_op.cu',
}

LABELS = np.random.RandomState(1).randint(0, 3, LOSS.shape).astype('float32')
# options that change a block's graph, beyond BLOCKS and OTHER_LAYOUTS
OPTIONS = {
    'RPNTargetSampler clobbering': (
        lambda: RPNTargetSampler(16, clobber_positives=True, min_forced_iou=0.1,
                                 fill_negative=False), [IOUS]),
    'QuotaSampler with a lower bound': (
        lambda: QuotaSampler(16, neg_iou_thresh_low=0.1, fill_negative=False), [IOUS]),
    'RPNTargetGenerator with a QuotaSampler': (
        lambda: RPNTargetGenerator(sampler=QuotaSampler(16), allowed_border=5),
        BLOCKS['RPNTargetGenerator'][1]),
    'RCNNTargetSampler with a lower bound': (
        lambda: RCNNTargetSampler(2, 40, 16, 0.5, 0.25, 3, neg_iou_thresh_low=0.1),
        BLOCKS['RCNNTargetSampler'][1]),
    'HardExampleMiner without limits': (
        lambda: HardExampleMiner(None, None, 'cls'), [LOSS, LOSS, BOXES, SAMPLES]),
    'HardExampleMiner with a cap': (
        lambda: HardExampleMiner(8, 0.5, 'loc', max_negatives_per_positive=2,
                                 min_negatives_per_image=1), [LOSS, LOSS, BOXES, SAMPLES]),
    'HardExampleMiner by label': (
        lambda: HardExampleMiner(8, 0.7, nms_by_label=True), [LOSS, LOSS, BOXES, SAMPLES,
                                                               LABELS]),
    'HardExampleMiner over the batch': (
        lambda: HardExampleMiner(8, 0.7, nms_by_label=True, scope='batch'),
        [LOSS, LOSS, BOXES, SAMPLES, LABELS]),
    'OHEMSampler with a minimum': (lambda: OHEMSampler(3, 2, 0.4), BLOCKS['OHEMSampler'][1]),
}
CASES = dict({name: (BLOCKS[name][0], BLOCKS[name][1]) for name in BLOCKS}, **OPTIONS)
CASES.update({'{} ({})'.format(name, layout): (BLOCKS[name][0], inputs)
              for (name, layout), inputs in OTHER_LAYOUTS.items()})


def graph_operators(block):
    """Operator names of the cached graphs of a block and its children (called once)."""
    found = set()
    graph = getattr(block, '_cached_graph', ())
    if graph:
        # as run: tojson drops amp_cast nodes by default
        nodes = json.loads(graph[1].tojson(remove_amp_cast=False))['nodes']
        found.update(node['op'] for node in nodes)
    for child in block._children.values():      # pylint: disable=protected-access
        found |= graph_operators(child)
    return found - {'null'}


def assert_gpu_operators(block, where):
    unknown = graph_operators(block) - set(GPU_KERNELS)
    assert not unknown, '{} uses operators with no known GPU kernel: {}'.format(
        where, sorted(unknown))


@pytest.mark.parametrize('nested', [False, True], ids=['alone', 'as a child'])
@pytest.mark.parametrize('name', sorted(CASES))
def test_block_graphs_use_gpu_operators_only(name, nested):
    factory, inputs = CASES[name]
    block = Parent(factory()) if nested else factory()
    block.initialize()
    block.hybridize()
    call(block, inputs)
    assert_gpu_operators(block, name)


def test_ohem_faster_rcnn_graphs_use_gpu_operators_only():
    ohem = OHEMFasterRCNN(tiny_net())
    ohem.hybridize(static_alloc=True)
    with autograd.record():
        ohem(images(), GT_BOXES, GT_LABELS)
    assert_gpu_operators(ohem, 'OHEMFasterRCNN')


def test_an_operator_without_a_gpu_kernel_is_reported():
    # the check itself: a graph with a CPU-only operator fails it
    class Looping(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x):  # pylint: disable=arguments-differ
            return F.contrib.foreach(lambda data, states: (data * 2, states), x, [])[0]
    block = Looping()
    block.hybridize()
    block(nd.ones((2, 3)))
    with pytest.raises(AssertionError, match='_foreach'):
        assert_gpu_operators(block, 'Looping')
