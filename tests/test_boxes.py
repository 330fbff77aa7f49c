"""Box geometry: batched IoU, the border rule and the encoder against MXNet and GluonCV."""
import mxnet as mx
import numpy as np
from gluoncv.nn.coder import NumPyNormalizedBoxCenterEncoder
from mxnet import nd
from numpy.testing import assert_allclose, assert_array_equal

from conftest import random_boxes
from gluonmine import boxes


def test_pairwise_iou_shared_and_per_image_equal_box_iou():
    rng = np.random.RandomState(0)
    anchors = random_boxes(rng, 50)
    gt = np.stack([random_boxes(rng, 4) for _ in range(3)])
    gt[2, 1] = -1                                   # a padding row: IoU 0
    gt[0, 0] = [10, 10, 10, 30]                     # a degenerate box: IoU 0
    want = np.stack([nd.contrib.box_iou(nd.array(anchors), nd.array(g)).asnumpy() for g in gt])
    # box-major (N, B, M) -> (B, N, M) to compare
    shared = boxes.pairwise_iou(nd, nd.array(anchors), nd.array(gt), shared=True).asnumpy()
    per_image = boxes.pairwise_iou(nd, nd.array(np.stack([anchors] * 3)), nd.array(gt),
                                   shared=False).asnumpy()
    shared, per_image = shared.transpose(1, 0, 2), per_image.transpose(1, 0, 2)
    assert_allclose(shared, want, rtol=1e-6)
    assert_allclose(per_image, want, rtol=1e-5, atol=1e-7)
    assert not shared[2, :, 1].any() and not shared[0, :, 0].any()


def test_inside_image_is_gluoncvs_border_rule():
    anchors = nd.array([[0, 0, 9, 9], [-1, 0, 5, 5], [0, 0, 10, 5], [2, 2, 8, 12]])
    im_hw = nd.array([[10, 10], [13, 11]])
    got = boxes.inside_image(nd, anchors, im_hw, 0, shared=True).asnumpy()
    assert_array_equal(got, [[1, 0, 0, 0], [1, 0, 1, 1]])
    got = boxes.inside_image(nd, anchors, im_hw, 1, shared=True).asnumpy()
    assert_array_equal(got, [[1, 1, 1, 0], [1, 1, 1, 1]])


def test_encode_equals_gluoncv_numpy_encoder():
    rng = np.random.RandomState(1)
    anchors, gt = random_boxes(rng, 30)[None], random_boxes(rng, 30)[None]
    stds = (0.1, 0.1, 0.2, 0.2)
    want, _ = NumPyNormalizedBoxCenterEncoder(stds=stds)(
        np.ones((1, 30)), np.arange(30)[None], anchors, gt)
    got = boxes.encode(nd, nd.array(anchors), nd.array(gt), stds).asnumpy()
    assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_per_image_iou_equals_box_iou_per_image():
    rng = np.random.RandomState(10)
    rois = np.stack([random_boxes(rng, 40) for _ in range(3)])
    gt = np.stack([random_boxes(rng, 6) for _ in range(3)])
    gt[1, 4:] = -1                                  # padding rows
    want = np.stack([nd.contrib.box_iou(nd.array(r), nd.array(g)).asnumpy()
                     for r, g in zip(rois, gt)])
    assert_array_equal(boxes.per_image_iou(nd, nd.array(rois), nd.array(gt)).asnumpy(), want)
    for num_image in (3, None):         # None in a symbolic graph: broadcast arithmetic
        symbol = boxes.per_image_iou(mx.sym, mx.sym.var('boxes'), mx.sym.var('gt'), num_image)
        executor = symbol.bind(mx.cpu(), {'boxes': nd.array(rois), 'gt': nd.array(gt)})
        np.testing.assert_allclose(executor.forward()[0].asnumpy(), want, atol=1e-6)
    single = boxes.per_image_iou(nd, nd.array(rois[:1]), nd.array(gt[:1]), num_image=1)
    assert_array_equal(single.asnumpy(), want[:1])


def test_encode_with_four_different_stds_and_means():
    # every coordinate its own std and mean, as GluonCV's encoder takes them
    rng = np.random.RandomState(1)
    anchors, gt = random_boxes(rng, 30)[None], random_boxes(rng, 30)[None]
    stds, means = (0.1, 0.2, 0.3, 0.4), (0.01, -0.02, 0.03, -0.04)
    for kwargs in (dict(stds=stds, means=means), dict(stds=stds)):
        want, _ = NumPyNormalizedBoxCenterEncoder(**kwargs)(
            np.ones((1, 30)), np.arange(30)[None], anchors, gt)
        got = boxes.encode(nd, nd.array(anchors), nd.array(gt), *kwargs.values()).asnumpy()
        assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batched_iou_of_two_zero_area_boxes_is_zero_like_box_iou():
    # a zero-area anchor against a padding row or another zero-area box: 0, not 0 / 0
    anchors = nd.array([[[5, 5, 5, 5], [5, 5, 5, 9], [0, 0, 10, 10]]])
    gt = nd.array([[[-1, -1, -1, -1], [5, 5, 5, 5]]])
    assert_array_equal(boxes.batched_iou(nd, anchors, gt).asnumpy()[0],
                       nd.contrib.box_iou(anchors[0], gt[0]).asnumpy())
