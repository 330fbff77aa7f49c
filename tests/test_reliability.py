"""Every public block, one table: bad input shapes, inputs left alone, seeded determinism,
copies of a block that has run, exported blocks on other shapes."""
import copy
import pickle

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon, nd
from numpy.testing import assert_array_equal

from conftest import MODES, errno_left_at_erange, export_and_import, random_boxes, run_in_mode
from gluonmine import (HardExampleMiner, HardNegativeMiner, OHEMSampler, QuotaSampler,
                       RCNNTargetSampler, RPNTargetGenerator, RPNTargetSampler)
from gluonmine.losses import MultiBoxLoss, RCNNHardExampleLoss


def table_inputs(rng, b, n, m, c):
    """name: the inputs of each block in BLOCKS, for b images, n candidates, m ground truths
    and c classes, as a dict, with the arrays they are made of under their names."""
    a = dict(ious=(rng.rand(b, n, m) ** 2).astype('float32'),
             loss=rng.rand(b, n).astype('float32'),
             boxes=np.stack([random_boxes(rng, n) for _ in range(b)]),
             samples=rng.choice([-1., 0., 1.], size=(b, n)).astype('float32'),
             gt=np.stack([random_boxes(rng, m) for _ in range(b)]),
             cls_target=rng.randint(-1, c + 1, (b, n)).astype('float32'),
             hw=rng.randint(80, 121, (b, 2)).astype('float32'),
             logits=rng.randn(b, n, c + 1).astype('float32'),
             box_pred=rng.randn(b, n, 4).astype('float32'),
             rcnn_box=rng.randn(b, n, c, 4).astype('float32'))
    inputs = {
        'RPNTargetSampler': [a['ious']],
        'QuotaSampler': [a['ious']],
        'RPNTargetGenerator': [a['gt'], a['boxes'][0], a['hw']],
        'RCNNTargetSampler': [a['boxes'], a['loss'], a['gt']],
        'HardExampleMiner': [a['loss'], a['loss'], a['boxes'], a['samples']],
        'HardNegativeMiner': [a['loss'], a['samples']],
        'OHEMSampler': [a['samples'], a['logits'], a['ious']],
        'MultiBoxLoss': [a['logits'], a['box_pred'], a['cls_target'], a['box_pred'][::-1]],
        'RCNNHardExampleLoss': [a['logits'], a['rcnn_box'], a['cls_target'],
                                a['rcnn_box'][:, ::-1], (a['rcnn_box'] > 0).astype('float32'),
                                a['boxes']]}
    return inputs, a


B, N, M, C = 2, 40, 3, 4
GOOD, _ARRAYS = table_inputs(np.random.RandomState(0), B, N, M, C)
IOUS, LOSS, BOXES, SAMPLES, GT, HW = (_ARRAYS[k] for k in
                                      ('ious', 'loss', 'boxes', 'samples', 'gt', 'hw'))

# name: (block factory, good inputs, [(position, bad input, input name in the message)])
BLOCKS = {
    'RPNTargetSampler': (lambda: RPNTargetSampler(num_sample=16), GOOD['RPNTargetSampler'],
                         [(0, IOUS[0], 'ious')]),
    'QuotaSampler': (lambda: QuotaSampler(num_sample=16), GOOD['QuotaSampler'],
                     [(0, IOUS[..., 0], 'ious')]),
    'RPNTargetGenerator': (
        lambda: RPNTargetGenerator(num_sample=16), GOOD['RPNTargetGenerator'],
        [(0, GT[0], 'gt_boxes'), (1, BOXES[0, :, :3], 'anchors'),
         (2, np.float32([[90, 90]] * 3), 'gt_boxes'), (1, BOXES[:, :, None], 'anchors')]),
    'RCNNTargetSampler': (
        lambda: RCNNTargetSampler(B, N, 16, 0.5, 0.25, M), GOOD['RCNNTargetSampler'],
        [(0, BOXES[0], 'rois'), (1, LOSS[:1], 'scores'), (2, GT[..., :2], 'gt_boxes')]),
    'HardExampleMiner': (
        lambda: HardExampleMiner(num_hard_examples=8), GOOD['HardExampleMiner'],
        [(0, LOSS[0], 'cls_losses'), (2, BOXES[..., :3], 'boxes'),
         (3, SAMPLES[:, :5], 'samples')]),
    'HardNegativeMiner': (lambda: HardNegativeMiner(3), GOOD['HardNegativeMiner'],
                          [(0, LOSS[:, None], 'losses'), (1, SAMPLES[:1], 'samples')]),
    'OHEMSampler': (lambda: OHEMSampler(3), GOOD['OHEMSampler'],
                    [(0, SAMPLES[0], 'x'), (1, LOSS, 'logits')]),
    'MultiBoxLoss': (MultiBoxLoss, GOOD['MultiBoxLoss'],
                     [(2, _ARRAYS['cls_target'][0], 'cls_target'), (1, LOSS, 'box_pred')]),
    'RCNNHardExampleLoss': (RCNNHardExampleLoss, GOOD['RCNNHardExampleLoss'],
                            [(0, LOSS, 'cls_pred'), (5, BOXES[0], 'rois')]),
}


def build(name, hybrid):
    block = BLOCKS[name][0]()
    block.initialize()
    if hybrid:
        block.hybridize()
    return block


def call(block, inputs):
    out = block(*[nd.array(x) for x in inputs])
    return [o.asnumpy() for o in (out if isinstance(out, (list, tuple)) else [out])]


@pytest.mark.parametrize('hybrid', [False, True], ids=['eager', 'hybrid'])
@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_bad_input_shapes_name_the_input(name, hybrid):
    block = build(name, hybrid)
    _, good, bad_cases = BLOCKS[name]
    call(block, good)                       # a hybridized block has its graph already
    for position, bad, input_name in bad_cases:
        inputs = list(good)
        inputs[position] = bad
        with pytest.raises(ValueError, match=input_name):
            call(block, inputs)


@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_inputs_are_never_modified(name):
    _, good, _ = BLOCKS[name]
    arrays = [nd.array(x) for x in good]
    before = [a.asnumpy().copy() for a in arrays]
    for hybrid in (False, True):
        build(name, hybrid)(*arrays)
        mx.nd.waitall()
        for array, original in zip(arrays, before):
            np.testing.assert_array_equal(array.asnumpy(), original)



@pytest.mark.parametrize('copy_block', [lambda b: pickle.loads(pickle.dumps(b)), copy.deepcopy],
                         ids=['pickle', 'deepcopy'])
@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_a_block_that_has_run_pickles_and_copies(name, copy_block):
    # a DataLoader with spawned workers pickles its dataset's transform, generator and
    # all; a built graph holds MXNet handles, which do not pickle
    block, good = build(name, True), BLOCKS[name][1]
    call(block, good)
    copied = copy_block(block)
    mx.random.seed(5)
    want = call(block, good)
    mx.random.seed(5)
    for got, expected in zip(call(copied, good), want):
        np.testing.assert_array_equal(got, expected)


# a batch of another size: one image more, 30 candidates more, 2 ground truths more
OTHER_SHAPES, _ = table_inputs(np.random.RandomState(1), B + 1, N + 30, M + 2, C)


@pytest.mark.parametrize('name', sorted(set(BLOCKS) - {'RCNNTargetSampler'}))
def test_an_exported_block_serves_other_batch_shapes(name, tmp_path):
    # a deployed symbol file is not tied to the shapes it was exported with
    # (RCNNTargetSampler's constructor fixes its images and proposals, as GluonCV's does)
    block = build(name, True)
    call(block, BLOCKS[name][1])
    imported, _ = export_and_import(block, tmp_path, len(BLOCKS[name][1]))
    outputs = []
    for runner in (imported, build(name, False)):
        mx.random.seed(3)
        outputs.append(call(runner, OTHER_SHAPES[name]))
    assert outputs[0][0].shape[0] == B + 1
    for got, want in zip(*outputs):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('hybrid', [False, True], ids=['eager', 'hybrid'])
@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_inputs_on_another_device_are_computed_there(name, hybrid):
    # mx.cpu(1) is a device of its own to MXNet, as mx.gpu(1) is: an array made on the
    # default device inside a block would not mix with the inputs
    runs = []
    for ctx in (mx.cpu(0), mx.cpu(1)):
        block = build(name, hybrid)
        mx.random.seed(9)
        out = block(*[nd.array(x, ctx=ctx) for x in BLOCKS[name][1]])
        out = out if isinstance(out, (list, tuple)) else [out]
        assert all(o.context == ctx for o in out)
        runs.append([o.asnumpy() for o in out])
    for got, want in zip(*runs):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_same_seed_same_selection_eager_and_hybrid(name):
    _, good, _ = BLOCKS[name]
    runs = []
    for hybrid in (False, True, True):
        mx.random.seed(42)
        runs.append(call(build(name, hybrid), good))
    for outputs in runs[1:]:
        for got, want in zip(outputs, runs[0]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


class Parent(gluon.HybridBlock):
    """A user's block that calls a gluonmine block: the child sees Symbols, not NDArrays."""

    def __init__(self, child):
        super(Parent, self).__init__()
        self.child = child

    def hybrid_forward(self, F, *inputs):  # pylint: disable=arguments-differ
        return self.child(*inputs)


# the other input layouts a block accepts, which its checks cannot see through a Symbol
OTHER_LAYOUTS = {
    ('RPNTargetGenerator', 'per-image anchors'): [GT, BOXES, HW],
    ('RPNTargetGenerator', 'anchors (1, N, 4)'): [GT, BOXES[:1], HW],     # GluonCV's output
    ('OHEMSampler', 'best IoU (B, N)'): [SAMPLES, BLOCKS['OHEMSampler'][1][1], IOUS.max(-1)],
}
LAYOUTS = [(name, 'usual', BLOCKS[name][1]) for name in sorted(BLOCKS)] + [
    key + (inputs,) for key, inputs in OTHER_LAYOUTS.items()]


@pytest.mark.parametrize('name, layout, inputs', LAYOUTS,
                         ids=['{}-{}'.format(*case[:2]) for case in LAYOUTS])
def test_inside_a_hybridized_block_selects_as_alone(name, layout, inputs):
    # inside a user's loss or training block the inputs are Symbols of unknown shape
    runs = []
    for make in (lambda block: block, Parent):
        block = make(BLOCKS[name][0]())
        block.initialize()
        block.hybridize()
        mx.random.seed(42)
        runs.append(call(block, inputs))
    for got, want in zip(*runs):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# inputs without candidates, for the blocks whose inputs do not all have N as axis 1
NO_CANDIDATES = {'RPNTargetGenerator': lambda gt, anchors, im_hw: [gt, anchors[:0], im_hw],
                 'RCNNTargetSampler': lambda rois, scores, gt: [rois[:, :0], scores[:, :0], gt]}


@pytest.mark.parametrize('hybrid', [False, True], ids=['eager', 'hybrid'])
@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_an_empty_batch_or_no_candidates_is_refused_by_name(name, hybrid):
    # MXNet computes nothing on zero-size arrays: a clear error, not one from its depths
    good = [np.asarray(x) for x in BLOCKS[name][1]]
    no_candidates = NO_CANDIDATES.get(name, lambda *xs: [x[:, :0] for x in xs])(*good)
    for inputs, axis in [([x[:0] for x in good], 'B'), (no_candidates, 'N')]:
        with pytest.raises(ValueError, match='with {} at least 1'.format(axis)):
            call(build(name, hybrid), inputs)


@pytest.mark.parametrize('name', ['RPNTargetSampler', 'QuotaSampler', 'OHEMSampler'])
def test_ious_without_ground_truth_columns_act_as_one_padding_column(name):
    # (B, N, 0) IoUs, a batch without objects: as one padding ground truth (IoU 0)
    good = BLOCKS[name][1]
    empty = list(good[:-1]) + [IOUS[..., :0]]
    padded = list(good[:-1]) + [np.zeros(IOUS.shape[:2] + (1,), 'float32')]
    for hybrid in (False, True):
        mx.random.seed(42)
        want = call(build(name, hybrid), padded)
        mx.random.seed(42)
        got = call(build(name, hybrid), empty)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        if name != 'OHEMSampler':
            assert (got[0] <= 0).all() and (got[0] < 0).any()    # negatives only


@pytest.mark.parametrize('make, name', [
    (lambda: RPNTargetSampler(num_sample=True), 'num_sample'),
    (lambda: QuotaSampler(num_sample=True), 'num_sample'),
    (lambda: RCNNTargetSampler(True, 10, 8, 0.5, 0.25, 5), 'num_image')])
def test_a_boolean_is_not_a_count(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_errno_left_by_earlier_c_code_changes_nothing(name, mode, tmp_path):
    # MXNet reads a scalar argument of +inf as out of range while errno is ERANGE,
    # eagerly, when it builds a graph and when it loads an exported one
    make, inputs = BLOCKS[name][0], [nd.array(x) for x in BLOCKS[name][1]]
    want = run_in_mode(make, inputs, mode, tmp_path / 'plain')
    with errno_left_at_erange():
        got = run_in_mode(make, inputs, mode, tmp_path / 'erange')
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_array_equal(g, w)


def test_float64_and_float16_ious_are_read_as_float32():
    ious = np.random.RandomState(0).uniform(0, 1, (2, 30, 3)).astype('float32')
    mx.random.seed(3)
    want = [o.asnumpy() for o in RPNTargetSampler(num_sample=8)(nd.array(ious))]
    for dtype in ('float64', 'float16'):
        mx.random.seed(3)
        got = RPNTargetSampler(num_sample=8)(nd.array(ious, dtype=dtype))
        assert all(g.dtype == np.float32 for g in got)
        if dtype == 'float64':                      # the same float32 values
            for g, w in zip(got, want):
                assert_array_equal(g.asnumpy(), w)
