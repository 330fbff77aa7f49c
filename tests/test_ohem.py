"""HardExampleMiner and OHEMSampler: hand-checked rules, a NumPy reference, GluonCV parity."""
import math

import numpy as np
import pytest
from gluoncv.model_zoo.ssd.target import SSDTargetGenerator
from gluoncv.nn.sampler import OHEMSampler as GluonCVOHEMSampler
from mxnet import nd
from numpy.testing import assert_array_equal

from conftest import (assert_same_outputs, errno_left_at_erange, float32_quota,
                      forward_without_host_sync, random_boxes)
from gluonmine.ohem import HardExampleMiner, OHEMSampler

NAN, INF = float('nan'), float('inf')


# ------------------------------------------------------------ a plain NumPy reference

def iou(a, b):
    """IoU of two corner boxes in float32, computed as contrib.box_nms does."""
    a, b = np.float32(a), np.float32(b)
    w = max(np.float32(0), min(a[2], b[2]) - max(a[0], b[0]))
    h = max(np.float32(0), min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h

    def area(x):
        return (x[2] - x[0]) * (x[3] - x[1]) if x[2] >= x[0] and x[3] >= x[1] else np.float32(0)
    with np.errstate(invalid='ignore', divide='ignore'):
        return inter / (area(a) + area(b) - inter)


def reference_mine(cls, loc, boxes, samples, labels=None, num_hard_examples=64,
                   iou_threshold=0.7, loss_type='both', cls_loss_weight=0.05,
                   loc_loss_weight=0.06, max_negatives_per_positive=None,
                   min_negatives_per_image=0, nms_by_label=False, scope='image'):
    """The selection of DESIGN.md, one candidate at a time: returns (indices, mask)."""
    batch, n = samples.shape
    k = n if num_hard_examples is None else num_hard_examples
    loss = {'cls': cls, 'loc': loc,
            'both': cls * np.float32(cls_loss_weight) + loc * np.float32(loc_loss_weight)}[
                loss_type]
    kept = []
    for b in range(batch):
        def usable(i):
            values = [cls[b, i], loc[b, i], loss[b, i], *boxes[b, i]]
            values += [labels[b, i]] if nms_by_label else []
            return samples[b, i] != 0 and all(math.isfinite(v) for v in values)
        order = sorted((i for i in range(n) if usable(i)), key=lambda i: (-loss[b, i], i))
        mine = []
        for i in order:
            if len(mine) == k:
                break
            if iou_threshold is not None and any(
                    iou(boxes[b, i], boxes[b, j]) > np.float32(iou_threshold)
                    and (not nms_by_label or labels[b, i] == labels[b, j]) for j in mine):
                continue
            mine.append(i)
        kept.append(mine)
    if scope == 'batch' and num_hard_examples is not None:
        everyone = sorted(((-loss[b, i], b, i) for b in range(batch) for i in kept[b]))[:k]
        kept = [[i for _, c, i in everyone if c == b] for b in range(batch)]
    if max_negatives_per_positive is not None:
        for b in range(batch):
            num_pos = sum(samples[b, i] > 0 for i in kept[b])
            quota = float32_quota(max_negatives_per_positive, num_pos, min_negatives_per_image)
            negatives = [i for i in kept[b] if samples[b, i] < 0][:quota]
            kept[b] = [i for i in kept[b] if samples[b, i] > 0 or i in negatives]
    indices = -np.ones((batch, k), 'float32')
    mask = np.zeros((batch, n), 'float32')
    for b, mine in enumerate(kept):
        indices[b, :len(mine)] = mine
        mask[b, mine] = 1
    return indices, mask


def mine(inputs, **kwargs):
    """HardExampleMiner(**kwargs) on NumPy inputs -> (indices, mask) as NumPy."""
    out = HardExampleMiner(**kwargs)(*[nd.array(x) for x in inputs])
    return tuple(o.asnumpy() for o in out)


def random_inputs(rng, batch, n, clustered=False, ties=True, with_labels=False):
    """(cls, loc, boxes, samples[, labels]) with overlaps, equal losses, ignores, NaN."""
    if clustered:   # many near-duplicates: most candidates get suppressed
        centres = np.stack([random_boxes(rng, 3, 100., 20., 30.) for _ in range(batch)])
        boxes = centres[:, rng.randint(0, 3, n)] + rng.uniform(-2, 2, (batch, n, 4))
    else:
        boxes = np.stack([random_boxes(rng, n, 100., 5., 40.) for _ in range(batch)])
    cls = rng.exponential(1., (batch, n))
    loc = rng.exponential(1., (batch, n))
    if ties:
        cls, loc = np.round(cls, 1), np.round(loc, 1)
    samples = rng.choice([-1., 0., 1.], size=(batch, n), p=[0.6, 0.1, 0.3])
    cls[rng.rand(batch, n) < 0.05] = NAN
    out = [cls.astype('float32'), loc.astype('float32'), boxes.astype('float32'),
           samples.astype('float32')]
    if with_labels:
        out.append(rng.randint(0, 3, (batch, n)).astype('float32'))
    return out


# ------------------------------------------------------------ hand-checked rules

# One image, five candidates (x1, y1, x2, y2):
#   0: (0, 0, 10, 10)   positive, cls loss 1
#   1: (1, 1, 10, 10)   negative, cls loss 2    IoU(0, 1) = 0.81
#   2: (20, 20, 30, 30) negative, cls loss 2    far from everything
#   3: (0, 0, 10, 9)    positive, cls loss 0.5  IoU(1, 3) = 0.73, IoU(0, 3) = 0.9
#   4: (50, 50, 60, 60) negative, cls loss 3    far from everything
BOXES = [[[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9], [50, 50, 60, 60]]]
CLS = [[1, 2, 2, 0.5, 3]]
SAMPLES = [[1, -1, -1, 1, -1]]
TOY = [np.float32(CLS), np.zeros((1, 5), 'float32'), np.float32(BOXES), np.float32(SAMPLES)]


def test_nms_visits_in_loss_order_and_ties_go_to_the_lower_index():
    # order 4 (3), 1 (2), 2 (2: tie with 1, higher index after it), 0 (1), 3 (0.5);
    # 0 and 3 overlap the kept 1 by more than 0.7 -> suppressed
    indices, mask = mine(TOY, num_hard_examples=4, loss_type='cls')
    assert_array_equal(indices, [[4, 1, 2, -1]])
    assert_array_equal(mask, [[0, 1, 1, 0, 1]])
    # threshold 0.85: 0 survives 1 (0.81), then 3 falls to 0 (0.9)
    indices, _ = mine(TOY, num_hard_examples=4, iou_threshold=0.85, loss_type='cls')
    assert_array_equal(indices, [[4, 1, 2, 0]])


def test_suppression_needs_a_kept_candidate_and_iou_strictly_above():
    # 1 and 3 are suppressed by 0 (IoU 0.81 and 0.9) once 0 outranks them; 3 would have
    # IoU 0.73 with 1, but 1 is suppressed, so it cannot suppress 3 -> only 0 suppresses
    cls = np.float32([[5, 2, 2, 4, 3]])
    indices, _ = mine([cls] + TOY[1:], num_hard_examples=5, iou_threshold=0.85,
                      loss_type='cls')
    assert_array_equal(indices, [[0, 4, 1, 2, -1]])      # 3: IoU 0.9 > 0.85 with 0
    # IoU exactly at the threshold is kept: boxes 0 and 1 of IoU 0.81 = 81 / 100
    indices, _ = mine(TOY, num_hard_examples=5, iou_threshold=np.float32(0.81),
                      loss_type='cls')
    assert 0 in indices[0] and 1 in indices[0]


def test_iou_threshold_takes_both_ends_of_its_range():
    # 0: any overlap suppresses (0 and 3 overlap the kept 1), boxes apart (2, 4) stay;
    # 1: only an IoU above 1 would suppress, so the five come in loss order
    assert_array_equal(mine(TOY, num_hard_examples=5, iou_threshold=0., loss_type='cls')[0],
                       [[4, 1, 2, -1, -1]])
    assert_array_equal(mine(TOY, num_hard_examples=5, iou_threshold=1., loss_type='cls')[0],
                       [[4, 1, 2, 0, 3]])


def test_num_hard_examples_stops_the_greedy_pass_and_none_keeps_all():
    indices, mask = mine(TOY, num_hard_examples=2, loss_type='cls')
    assert_array_equal(indices, [[4, 1]])
    assert_array_equal(mask, [[0, 1, 0, 0, 1]])
    indices, mask = mine(TOY, num_hard_examples=None, loss_type='cls')
    assert_array_equal(indices, [[4, 1, 2, -1, -1]])       # K = N = 5


def test_iou_threshold_none_is_a_plain_sort():
    indices, mask = mine(TOY, num_hard_examples=None, iou_threshold=None, loss_type='cls')
    assert_array_equal(indices, [[4, 1, 2, 0, 3]])
    assert_array_equal(mask, [[1, 1, 1, 1, 1]])
    indices, _ = mine(TOY, num_hard_examples=2, iou_threshold=None, loss_type='cls')
    assert_array_equal(indices, [[4, 1]])


def test_loss_types_rank_by_cls_loc_or_the_weighted_sum():
    cls = np.float32([[1, 0, 0, 0, 0]])
    loc = np.float32([[0, 1, 0, 0, 0]])
    inputs = [cls, loc] + TOY[2:]
    for loss_type, first in [('cls', 0), ('loc', 1)]:
        indices, _ = mine(inputs, num_hard_examples=1, iou_threshold=None, loss_type=loss_type)
        assert indices[0, 0] == first
    # both: 0.05 * 1 < 0.06 * 1 -> the loc-heavy candidate 1 first; reversed weights -> 0
    assert mine(inputs, num_hard_examples=1, iou_threshold=None)[0][0, 0] == 1
    assert mine(inputs, num_hard_examples=1, iou_threshold=None, cls_loss_weight=0.07)[0][
        0, 0] == 0


def test_negative_cap_keeps_positives_and_the_hardest_negatives():
    # no NMS: order 4-, 1-, 2-, 0+, 3+; 2 positives -> cap floor(0.5 * 2) = 1 negative: 4
    kwargs = dict(num_hard_examples=None, iou_threshold=None, loss_type='cls')
    indices, mask = mine(TOY, max_negatives_per_positive=0.5, **kwargs)
    assert_array_equal(indices, [[4, 0, 3, -1, -1]])
    assert_array_equal(mask, [[1, 0, 0, 1, 1]])
    # floor: 0.9 * 2 = 1.8 -> 1 negative; the minimum lifts it to 2
    assert_array_equal(mine(TOY, max_negatives_per_positive=0.9, **kwargs)[0],
                       [[4, 0, 3, -1, -1]])
    assert_array_equal(mine(TOY, max_negatives_per_positive=0.5, min_negatives_per_image=2,
                            **kwargs)[0], [[4, 1, 0, 3, -1]])


def test_negative_cap_counts_only_positives_that_nms_kept():
    # with NMS 0.7 both positives are suppressed: num_positives = 0 -> 0 negatives,
    # unless min_negatives_per_image allows some
    indices, _ = mine(TOY, num_hard_examples=4, loss_type='cls', max_negatives_per_positive=3)
    assert_array_equal(indices, [[-1, -1, -1, -1]])
    indices, _ = mine(TOY, num_hard_examples=4, loss_type='cls', max_negatives_per_positive=3,
                      min_negatives_per_image=2)
    assert_array_equal(indices, [[4, 1, -1, -1]])


def test_image_without_positives_and_all_ignored():
    # image 0 has only negatives; image 1 is all ignored: nothing is selected there
    cls = np.float32([[3, 2, 1], [9, 9, 9]])
    boxes = np.float32([[[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]]] * 2)
    samples = np.float32([[-1, -1, -1], [0, 0, 0]])
    inputs = [cls, np.zeros_like(cls), boxes, samples]
    indices, mask = mine(inputs, num_hard_examples=2, loss_type='cls')
    assert_array_equal(indices, [[0, 1], [-1, -1]])
    assert_array_equal(mask, [[1, 1, 0], [0, 0, 0]])
    indices, _ = mine(inputs, num_hard_examples=2, loss_type='cls',
                      max_negatives_per_positive=3, min_negatives_per_image=1)
    assert_array_equal(indices, [[0, -1], [-1, -1]])


def test_nan_and_infinite_never_selected_nor_suppress():
    # candidate 1 (loss NaN) and 4 (loss inf) would be the hardest and overlap 0 and 2;
    # they are skipped and suppress nothing. Candidate 3 has a NaN box, 5 an inf loc loss.
    boxes = np.float32([[[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [NAN, 0, 1, 1],
                         [20, 20, 30, 30], [40, 40, 50, 50]]])
    cls = np.float32([[1, NAN, 2, 5, INF, 0.5]])
    loc = np.float32([[0, 0, 0, 0, 0, INF]])
    samples = -np.ones((1, 6), 'float32')
    for loss_type in ('cls', 'both'):
        indices, mask = mine([cls, loc, boxes, samples], num_hard_examples=6,
                             loss_type=loss_type)
        assert_array_equal(indices, [[2, 0, -1, -1, -1, -1]])
        assert_array_equal(mask, [[1, 0, 1, 0, 0, 0]])


def test_nms_by_label_suppresses_only_within_a_label():
    # 1 (loss 2) overlaps 0 and 3; with labels 1 and 0 differing from 1's, 0 survives
    labels = np.float32([[0, 1, 1, 1, 2]])
    indices, _ = mine(TOY + [labels], num_hard_examples=5, loss_type='cls', nms_by_label=True)
    assert_array_equal(indices, [[4, 1, 2, 0, -1]])        # 3 (label 1) falls to 1
    # a label of -1 is an ordinary label (box_nms's background id is never hit)
    indices, _ = mine(TOY + [labels - 1], num_hard_examples=5, loss_type='cls',
                      nms_by_label=True)
    assert_array_equal(indices, [[4, 1, 2, 0, -1]])



def test_nan_or_infinite_label_never_selected():
    # with nms_by_label the labels are inputs too: a candidate whose label is NaN (1) or
    # infinite (4) is never selected, however hard
    labels = np.float32([[0, NAN, 1, 1, INF]])
    indices, mask = mine(TOY + [labels], num_hard_examples=5, loss_type='cls', nms_by_label=True)
    assert_array_equal(indices, [[2, 0, 3, -1, -1]])
    assert_array_equal(mask, [[1, 0, 1, 1, 0]])


def test_batch_scope_counts_over_all_images():
    # image 1 has losses twice image 0's: the 3 hardest of the batch are 4, 1, 2 of image 1;
    # equal losses across images go to the lower image first
    cls = np.float32([CLS[0], [2 * c for c in CLS[0]]])
    inputs = [cls, np.zeros_like(cls), np.float32(BOXES * 2), np.float32(SAMPLES * 2)]
    indices, mask = mine(inputs, num_hard_examples=3, loss_type='cls', scope='batch')
    assert_array_equal(indices, [[-1, -1, -1], [4, 1, 2]])
    assert_array_equal(mask, [[0, 0, 0, 0, 0], [0, 1, 1, 0, 1]])
    indices, _ = mine(inputs, num_hard_examples=4, loss_type='cls', scope='batch')
    assert_array_equal(indices, [[4, -1, -1, -1], [4, 1, 2, -1]])   # + image 0's loss 3
    # two identical images: the single hardest (loss 3 in both) is image 0's
    inputs = [np.float32(CLS * 2), np.zeros((2, 5), 'float32')] + inputs[2:]
    indices, _ = mine(inputs, num_hard_examples=1, loss_type='cls', scope='batch')
    assert_array_equal(indices, [[4], [-1]])


# ------------------------------------------------------------ against the NumPy reference

CONFIGS = [
    dict(),
    dict(num_hard_examples=5, iou_threshold=0.5, loss_type='cls'),
    dict(num_hard_examples=7, iou_threshold=0.3, loss_type='loc', max_negatives_per_positive=1.5,
         min_negatives_per_image=1),
    dict(num_hard_examples=None, iou_threshold=0.6, max_negatives_per_positive=2),
    dict(num_hard_examples=10, iou_threshold=None, loss_type='cls'),
    dict(num_hard_examples=None, iou_threshold=None, max_negatives_per_positive=3),
    dict(num_hard_examples=12, iou_threshold=0.7, scope='batch', loss_type='cls'),
    dict(num_hard_examples=9, iou_threshold=0.5, scope='batch', max_negatives_per_positive=1),
    dict(num_hard_examples=6, iou_threshold=0.4, nms_by_label=True, loss_type='cls'),
    dict(num_hard_examples=100, iou_threshold=0.7),                       # K > N
    dict(num_hard_examples=20, iou_threshold=0.7, loss_type='both', cls_loss_weight=1.,
         loc_loss_weight=1., nms_by_label=True, scope='batch'),              # Caffe OHEM
]


@pytest.mark.parametrize('kwargs', CONFIGS, ids=lambda kw: ','.join(
    '{}={}'.format(k, v) for k, v in kw.items()) or 'defaults')
@pytest.mark.parametrize('clustered', [False, True], ids=['spread', 'clustered'])
def test_matches_the_reference_on_random_inputs(kwargs, clustered):
    rng = np.random.RandomState(3)
    for _ in range(3):
        inputs = random_inputs(rng, 3, 50, clustered=clustered,
                               with_labels=kwargs.get('nms_by_label', False))
        want = reference_mine(*inputs, **kwargs)
        got = mine(inputs, **kwargs)
        assert_array_equal(got[0], want[0])
        assert_array_equal(got[1], want[1])


def test_prefix_too_short_falls_back_to_whole_rows():
    # 40 copies of one box then 40 far-apart boxes of lower loss: the hardest 4 * 3 = 12
    # keep only one candidate, so the image is visited again in full; the other image
    # (spread boxes) is settled by its prefix
    rng = np.random.RandomState(0)
    far = random_boxes(rng, 40, 1000., 5., 10.) + np.float32([0, 200, 0, 200])
    boxes = np.float32([np.concatenate([np.tile([[0, 0, 50, 50]], (40, 1)), far]),
                        random_boxes(rng, 80, 1000., 5., 10.)])
    cls = np.float32(np.concatenate([np.linspace(9, 5, 40), np.linspace(4, 1, 40)]))[None]
    inputs = [np.repeat(cls, 2, 0), np.zeros((2, 80), 'float32'), boxes,
              -np.ones((2, 80), 'float32')]
    got = mine(inputs, num_hard_examples=3, loss_type='cls')
    assert_array_equal(got[0], reference_mine(*inputs, num_hard_examples=3, loss_type='cls')[0])
    assert_array_equal(got[0][0], [0, 40, 41])



def test_a_prefix_one_short_falls_back_too():
    # k 3, the hardest 2 * 3 = 6: 1..4 duplicate 0, so the prefix keeps 0 and 5, one
    # short; 6, past the prefix, must still be found
    a, b, c = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]
    boxes = np.float32([[a, a, a, a, a, b, c]])
    cls = np.float32([[7, 6, 5, 4, 3, 2, 1]])
    inputs = [cls, np.zeros_like(cls), boxes, -np.ones_like(cls)]
    assert_array_equal(mine(inputs, num_hard_examples=3, loss_type='cls')[0], [[0, 5, 6]])


def test_a_zero_loss_past_the_prefix_is_still_a_candidate():
    # loss_type 'loc': negatives have loc loss 0, a real value, selectable after the
    # positives; the prefix (0..3, one box) keeps only 0
    a, b, c = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]
    loc = np.float32([[4, 3, 2, 1, 0, 0]])
    inputs = [np.zeros_like(loc), loc, np.float32([[a, a, a, a, b, c]]),
              np.float32([[1, 1, 1, 1, -1, -1]])]
    assert_array_equal(mine(inputs, num_hard_examples=2, loss_type='loc')[0], [[0, 4]])


def test_equal_losses_on_a_long_row_keep_index_order():
    # 3000 candidates, every loss equal, no overlaps: the first 64 indices, in order
    n = 3000
    boxes = np.float32([[[10 * i, 0, 10 * i + 5, 5] for i in range(n)]])
    inputs = [np.ones((1, n), 'float32'), np.ones((1, n), 'float32'), boxes,
              -np.ones((1, n), 'float32')]
    for iou_threshold in (0.7, None):
        indices, _ = mine(inputs, iou_threshold=iou_threshold)
        assert_array_equal(indices, [np.arange(64)])


# ------------------------------------------------------------ modes, host sync, inputs

MODE_CONFIGS = [dict(), dict(num_hard_examples=None, iou_threshold=None,
                             max_negatives_per_positive=3),
                dict(num_hard_examples=8, nms_by_label=True, scope='batch',
                     max_negatives_per_positive=2)]


@pytest.mark.parametrize('kwargs', MODE_CONFIGS)
def test_eager_hybrid_exported_agree_without_host_sync(kwargs, modes):
    inputs = [nd.array(x) for x in random_inputs(np.random.RandomState(5), 2, 120,
                                                  with_labels=kwargs.get('nms_by_label'))]
    results = modes(lambda: HardExampleMiner(**kwargs), inputs)
    assert_same_outputs(results)
    eager, hybrid = forward_without_host_sync(HardExampleMiner(**kwargs), inputs)
    for got, want in zip(eager + hybrid, results['eager'] * 2):
        assert_array_equal(got, want)


def test_inputs_are_not_modified():
    inputs = [nd.array(x) for x in random_inputs(np.random.RandomState(6), 2, 40,
                                                  with_labels=True)]
    before = [x.asnumpy().copy() for x in inputs]
    for hybrid in (False, True):
        miner = HardExampleMiner(5, nms_by_label=True, max_negatives_per_positive=1)
        if hybrid:
            miner.hybridize()
        miner(*inputs)
        for x, want in zip(inputs, before):
            assert_array_equal(x.asnumpy(), want)


def test_labels_required_only_with_nms_by_label():
    inputs = [nd.array(x) for x in TOY]
    with pytest.raises(ValueError, match='labels'):
        HardExampleMiner(nms_by_label=True)(*inputs)
    # without nms_by_label, labels are accepted and ignored
    indices, _ = HardExampleMiner(4, loss_type='cls')(*inputs, nd.zeros((1, 5)))
    assert_array_equal(indices.asnumpy(), [[4, 1, 2, -1]])


@pytest.mark.parametrize('kwargs, name', [
    (dict(num_hard_examples=0), 'num_hard_examples'),
    (dict(num_hard_examples=2.5), 'num_hard_examples'),
    (dict(iou_threshold=1.5), 'iou_threshold'),
    (dict(iou_threshold=-0.1), 'iou_threshold'),
    (dict(loss_type='focal'), 'loss_type'),
    (dict(cls_loss_weight=-1), 'cls_loss_weight'),
    (dict(loc_loss_weight=float('inf')), 'loc_loss_weight'),
    (dict(max_negatives_per_positive=-1), 'max_negatives_per_positive'),
    (dict(min_negatives_per_image=-1), 'min_negatives_per_image'),
    (dict(nms_by_label='yes'), 'nms_by_label'),
    (dict(nms_by_label=True, iou_threshold=None), 'iou_threshold'),
    (dict(scope='dataset'), 'scope'),
])
def test_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        HardExampleMiner(**kwargs)


def test_tiny_scalars_are_stored_as_float32():
    # MXNet rejects denormal double scalars; they are stored as float32 (here 0), as MXNet
    # would compare and multiply float32 data with them anyway
    miner = HardExampleMiner(4, iou_threshold=1e-310, cls_loss_weight=1e-310,
                             max_negatives_per_positive=1e-310, min_negatives_per_image=1)
    indices, _ = miner(*[nd.array(x) for x in TOY])
    # all losses 0: index order; NMS at 0 keeps 0, 2, 4; cap max(1, 0 * 1) -> positive 0, then 2
    assert_array_equal(indices.asnumpy(), [[0, 2, -1, -1]])
    # thresh 0 in float32: the IoU of 0 is not below it, so the negative is not eligible
    assert_array_equal(OHEMSampler(1, min_samples=1e-310, thresh=1e-310)(
        nd.array([[0, -1]]), nd.zeros((1, 2, 3)), nd.zeros((1, 2, 1))).asnumpy(), [[1, 0]])
    # but a ratio, which must be above 0, is 0 in float32: refused (tests/test_checks.py)
    with pytest.raises(ValueError, match=r'ratio must be in \(0.0, inf\), got 1e-310'):
        OHEMSampler(1e-310)


@pytest.mark.parametrize('position, bad, name', [
    (0, nd.zeros((1, 5, 1)), 'cls_losses'), (2, nd.zeros((1, 5, 3)), 'boxes'),
    (3, nd.zeros((1, 4)), 'samples'), (1, nd.zeros((2, 5)), 'loc_losses'),
    (2, nd.zeros((1, 6, 4)), 'boxes'),
])
def test_rejects_bad_input_shapes(position, bad, name):
    inputs = [nd.array(x) for x in TOY]
    inputs[position] = bad
    for hybrid in (False, True):
        miner = HardExampleMiner()
        if hybrid:
            miner.hybridize()
        with pytest.raises(ValueError, match=name):
            miner(*inputs)


def test_rejects_bad_label_shapes():
    # with nms_by_label, labels must be (B, N) like samples: (B, N, 1), another B, another N
    inputs = [nd.array(x) for x in TOY]
    for labels in (nd.zeros((1, 5, 1)), nd.zeros((2, 5)), nd.zeros((1, 4))):
        for hybrid in (False, True):
            miner = HardExampleMiner(nms_by_label=True)
            if hybrid:
                miner.hybridize()
            with pytest.raises(ValueError, match='labels'):
                miner(*inputs, labels)


# ------------------------------------------------------------ OHEMSampler


def background_logits(p_background, classes=3):
    """Logits (B, N, classes) whose softmax gives background probability p: log p vs uniform."""
    p = np.float64(p_background)[..., None]
    rest = np.broadcast_to((1 - p) / (classes - 1), p.shape[:-1] + (classes - 1,))
    return np.log(np.concatenate([p, rest], axis=-1)).astype('float32')


def test_ohem_sampler_on_a_hand_checked_image():
    # 8 anchors: 0 and 1 matched (positives); 2 overlaps a ground truth at 0.6 (not
    # eligible); 3..7 eligible negatives with background probability 0.9, 0.2, 0.5, 0.2, 0.8.
    # ratio 1 -> 2 negatives: the lowest background probabilities, 0.2 at 4 and 0.2 at 6:
    # a tie, both taken; ratio 0.5 -> 1 negative: the tie goes to the lower index, 4.
    x = nd.array([[0, 1, -1, -1, -1, -1, -1, -1]])
    logits = nd.array(background_logits([[0.5, 0.5, 0.01, 0.9, 0.2, 0.5, 0.2, 0.8]]))
    ious = nd.array([[[0.9, 0.0], [0.1, 0.7], [0.6, 0.1], [0.1, 0.2], [0.0, 0.0], [0.4, 0.0],
                      [0.3, 0.49], [0.0, 0.0]]])
    assert_array_equal(OHEMSampler(1)(x, logits, ious).asnumpy(),
                       [[1, 1, 0, 0, -1, 0, -1, 0]])
    assert_array_equal(OHEMSampler(0.5)(x, logits, ious).asnumpy(),
                       [[1, 1, 0, 0, -1, 0, 0, 0]])
    # thresh 0.45: anchor 6 (IoU 0.49) is no longer eligible -> the next hardest, 5 (0.5)
    assert_array_equal(OHEMSampler(1, thresh=0.45)(x, logits, ious).asnumpy(),
                       [[1, 1, 0, 0, -1, -1, 0, 0]])
    # (B, N) ious: the best IoU per anchor gives the same answer
    best = nd.array(ious.asnumpy().max(axis=2))
    assert_array_equal(OHEMSampler(1)(x, logits, best).asnumpy(), [[1, 1, 0, 0, -1, 0, -1, 0]])


def test_ohem_sampler_min_samples_and_no_positives():
    # no positives: ratio gives 0, min_samples 2 gives the two hardest; NaN logits never
    x = nd.array([[-1, -1, -1, -1]])
    logits = nd.array(background_logits([[0.9, 0.1, 0.3, 0.2]]))
    logits[0, 1, 0] = NAN
    ious = nd.zeros((1, 4, 1))
    assert_array_equal(OHEMSampler(3)(x, logits, ious).asnumpy(), [[0, 0, 0, 0]])
    assert_array_equal(OHEMSampler(3, min_samples=2)(x, logits, ious).asnumpy(),
                       [[0, 0, -1, -1]])



def test_ohem_sampler_floors_a_fractional_min_samples_as_gluoncv():
    # no positives, min_samples 2.5: floor(max(2.5, 3 * 0)) = 2 negatives (GluonCV's int()),
    # the lowest background probabilities 0.1 (1) and 0.2 (3)
    x, ious = nd.array([[-1, -1, -1, -1]]), nd.zeros((1, 4, 1))
    logits = nd.array(background_logits([[0.9, 0.1, 0.3, 0.2]]))
    for sampler in (OHEMSampler(3, min_samples=2.5), GluonCVOHEMSampler(3, 2.5)):
        assert_array_equal(sampler(x, logits, ious).asnumpy(), [[0, -1, 0, -1]])


def test_ohem_sampler_ties_anchors_whose_background_probability_underflows():
    # background logits 150 and 200 below the others: both probabilities are 0 in float32,
    # both the hardest, tied; the tie goes to the lower index (a log-probability, -150
    # against -200, would take 1)
    logits = nd.array([[[-150, 0, 0], [-200, 0, 0], [0, 0, 0]]])
    got = OHEMSampler(1, min_samples=1)(nd.array([[-1, -1, -1]]), logits, nd.zeros((1, 3, 1)))
    assert_array_equal(got.asnumpy(), [[-1, 0, 0]])


def test_ohem_sampler_iou_at_thresh_is_not_eligible():
    # a negative must overlap every ground truth below thresh: 1, the hardest, sits at it
    x = nd.array([[0, -1, -1]])
    logits = nd.array(background_logits([[0.5, 0.1, 0.6]]))
    ious = nd.array([[[0.9], [0.5], [0.1]]])
    assert_array_equal(OHEMSampler(1, thresh=0.5)(x, logits, ious).asnumpy(), [[1, 0, -1]])


def test_ohem_sampler_a_nan_logit_on_a_long_row_leaves_the_rest_selected():
    # 300 anchors (past MXNet's fast top-k), 60 positives, one NaN logit: the 60 hardest
    # of the other negatives, by background probability
    n, num_pos = 300, 60
    x = -np.ones((1, n), 'float32')
    x[0, :num_pos] = 0
    logits = np.random.RandomState(0).randn(1, n, 3).astype('float32')
    logits[0, num_pos + 3, 0] = NAN
    got = OHEMSampler(1)(nd.array(x), nd.array(logits), nd.zeros((1, n, 1))).asnumpy()[0]
    p = np.exp(logits[0] - logits[0].max(axis=-1, keepdims=True))
    background = p[:, 0] / p.sum(axis=-1)
    background[:num_pos] = background[num_pos + 3] = np.inf       # never negatives
    want = np.zeros(n)
    want[:num_pos] = 1
    want[np.argsort(background, kind='stable')[:num_pos]] = -1
    assert_array_equal(got, want)


def ssd_inputs(rng, batch, n, m=8, classes=21, positive=0.02):
    """Matches, logits and 3-D ious shaped like GluonCV's SSD target generator's."""
    ious = (rng.rand(batch, n, m) ** 4).astype('float32')
    matches = np.where(rng.rand(batch, n) < positive, rng.randint(0, m, (batch, n)), -1)
    logits = rng.randn(batch, n, classes).astype('float32') * 2
    return nd.array(matches.astype('float32')), nd.array(logits), nd.array(ious)


@pytest.mark.parametrize('ratio, min_samples, thresh', [(3, 0, 0.5), (1.5, 10, 0.3),
                                                         (3, 0, 0.7)])
def test_ohem_sampler_equals_gluoncv_on_random_inputs(ratio, min_samples, thresh):
    rng = np.random.RandomState(1)
    for _ in range(3):
        x, logits, ious = ssd_inputs(rng, 4, 1500)
        for iou_input in (ious, nd.array(ious.asnumpy().max(axis=2))):   # 3-D and 2-D
            want = GluonCVOHEMSampler(ratio, min_samples, thresh)(x, logits, iou_input)
            got = OHEMSampler(ratio, min_samples, thresh)(x, logits, iou_input)
            assert_array_equal(got.asnumpy(), want.asnumpy())


def test_ohem_sampler_equals_gluoncv_beyond_the_fast_top_k():
    # 5% positives of 3000 -> quotas near 450, above the top-k of 256: the full-sort path
    x, logits, ious = ssd_inputs(np.random.RandomState(2), 3, 3000, positive=0.05)
    want = GluonCVOHEMSampler(3)(x, logits, ious).asnumpy()
    got = OHEMSampler(3)(x, logits, ious).asnumpy()
    assert ((want < 0).sum(axis=1) > 256).all()
    assert_array_equal(got, want)


def test_ohem_sampler_never_relabels_positives_when_negatives_run_out():
    # the deliberate difference: 30 positives, quota min(3 * 30, 100 - 30) = 70, only 20
    # eligible negatives. GluonCV relabels 50 positives or ineligible anchors as -1;
    # gluonmine takes the 20 eligible negatives and leaves the rest alone. On eligible
    # negatives both agree.
    rng = np.random.RandomState(3)
    matches = np.full((1, 100), -1, 'float32')
    matches[0, :30] = 0
    ious = np.zeros((1, 100, 1), 'float32')
    ious[0, 30:80, 0] = 0.6                                  # 50 negatives too close to a gt
    inputs = [nd.array(matches), nd.array(rng.randn(1, 100, 5)), nd.array(ious)]
    got = OHEMSampler(3)(*inputs).asnumpy()
    want = GluonCVOHEMSampler(3)(*inputs).asnumpy()
    assert_array_equal(got[0, :30], np.ones(30))             # positives untouched
    assert_array_equal(got[0, 30:80], np.zeros(50))          # ineligible stay 0
    assert_array_equal(got[0, 80:], -np.ones(20))            # every eligible negative
    assert_array_equal(want[0, 80:], got[0, 80:])
    assert (want == -1).sum() == 70 and (want[0, :80] == -1).sum() == 50


def test_ohem_sampler_replaces_gluoncvs_in_the_ssd_target_generator():
    rng = np.random.RandomState(4)
    anchors = nd.array(rng.uniform(0, 1, (1, 600, 4)).astype('float32') * [1, 1, 0.3, 0.3])
    gt = np.sort(rng.uniform(0, 1, (2, 5, 4)), axis=-1).astype('float32')[..., [0, 2, 1, 3]]
    gt_boxes, gt_ids = nd.array(gt), nd.array(rng.randint(0, 20, (2, 5, 1)))
    cls_preds = nd.array(rng.randn(2, 600, 21).astype('float32'))
    theirs = SSDTargetGenerator(negative_mining_ratio=3)
    ours = SSDTargetGenerator(negative_mining_ratio=3)
    ours._sampler = OHEMSampler(3, thresh=0.5)               # Gluon checks the child's type
    assert isinstance(ours._sampler, GluonCVOHEMSampler)
    for got, want in zip(ours(anchors, cls_preds, gt_boxes, gt_ids),
                         theirs(anchors, cls_preds, gt_boxes, gt_ids)):
        assert_array_equal(got.asnumpy(), want.asnumpy())


def test_ohem_sampler_modes_agree_without_host_sync_and_keep_inputs(modes):
    inputs = list(ssd_inputs(np.random.RandomState(5), 2, 700, positive=0.1))
    before = [x.asnumpy().copy() for x in inputs]
    results = modes(lambda: OHEMSampler(3, min_samples=5), inputs)
    assert_same_outputs(results)
    eager, hybrid = forward_without_host_sync(OHEMSampler(3, min_samples=5), inputs)
    assert_array_equal(eager[0], results['eager'][0])
    assert_array_equal(hybrid[0], results['eager'][0])
    for x, want in zip(inputs, before):
        assert_array_equal(x.asnumpy(), want)


def test_ohem_sampler_without_an_iou_limit_in_every_mode(modes):
    # read right whatever errno earlier C code left (MXNet may misread a scalar +inf)
    inputs = list(ssd_inputs(np.random.RandomState(5), 2, 700, positive=0.1))
    with errno_left_at_erange():
        results = modes(lambda: OHEMSampler(3, min_samples=5, thresh=float('inf')), inputs)
    assert_same_outputs(results)
    want = OHEMSampler(3, min_samples=5, thresh=2.)(*inputs).asnumpy()     # IoUs <= 1
    assert_array_equal(results['eager'][0], want)
    assert (want != OHEMSampler(3, min_samples=5)(*inputs).asnumpy()).any()


@pytest.mark.parametrize('args, kwargs, name', [
    ((0,), {}, 'ratio'), ((-1,), {}, 'ratio'), ((float('inf'),), {}, 'ratio'),
    ((3,), dict(min_samples=-1), 'min_samples'), ((3,), dict(thresh=float('nan')), 'thresh'),
    (('3',), {}, 'ratio'),
])
def test_ohem_sampler_rejects_bad_arguments(args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        OHEMSampler(*args, **kwargs)


def test_ohem_sampler_rejects_bad_input_shapes():
    x, logits, ious = ssd_inputs(np.random.RandomState(6), 2, 50)
    for args, name in [((x.expand_dims(2), logits, ious), 'x'),
                       ((x, logits[0], ious), 'logits'),
                       ((x, logits, ious[:, :40]), 'ious')]:
        with pytest.raises(ValueError, match=name):
            OHEMSampler(3)(*args)
