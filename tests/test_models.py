"""The tiny GluonCV detectors used by tests and offline recipes."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd
from numpy.testing import assert_allclose

from gluonmine.models import tiny_faster_rcnn, tiny_faster_rcnn_fpn, tiny_ssd


def training_step(net):
    """One hybridized training step of a fresh net on 2 random 128 x 160 images (the second
    with a padding ground truth): GluonCV's training outputs."""
    net.initialize()
    net.hybridize()
    gt = nd.array([[[10, 10, 60, 80], [50, 40, 120, 110]], [[5, 5, 40, 40], [-1, -1, -1, -1]]])
    label = nd.array([[[0], [1]], [[1], [-1]]])
    with autograd.record():
        outputs = net(nd.random.uniform(shape=(2, 3, 128, 160)), gt, label)
        loss = outputs[0].sum() + outputs[5].sum()
    loss.backward()
    return outputs


def test_tiny_faster_rcnn_trains_a_step():
    net = tiny_faster_rcnn(['a', 'b'], per_device_batch_size=2)
    outputs = training_step(net)
    assert outputs[0].shape == (2, 128, 3) and outputs[7].shape[-1] == 4
    net.hybridize(active=False)        # prediction takes one input, training three
    with autograd.predict_mode():
        ids, scores, bboxes = net(nd.random.uniform(shape=(1, 3, 128, 160)))
    assert bboxes.shape[-1] == 4


def test_tiny_faster_rcnn_fpn_gives_anchors_a_level_and_trains_a_step():
    net = tiny_faster_rcnn_fpn(['a', 'b'], per_device_batch_size=2)
    outputs = training_step(net)
    assert net.num_stages == 5 and outputs[0].shape == (2, 128, 3)
    # strides 4 to 64 on 128 x 160, three anchors a position (one size, three ratios)
    assert [level.shape[1] for level in outputs[7]] == [
        3 * -(-128 // s) * -(-160 // s) for s in (4, 8, 16, 32, 64)]
    trained = net.collect_train_params()
    assert any(name.startswith(net.prefix + 'rpn') for name in trained.keys())
    # the random ResNet trains whole: every batch normalisation's scale too
    gammas = [name for name in net.collect_params().keys() if name.endswith('gamma')]
    assert len(gammas) > 20 and all(name in trained for name in gammas)
    with pytest.raises(ValueError, match='num_filters'):
        tiny_faster_rcnn_fpn(['a'], num_filters=0)


def test_tiny_faster_rcnn_fpn_pools_rois_and_sizes_its_box_head():
    # ROIPooling, not ROIAlign (MXNet's CPU kernel); the box head's dense layer has twice
    # num_filters units
    net = tiny_faster_rcnn_fpn(['a', 'b'], num_filters=8)
    with autograd.predict_mode():
        graph = mx.sym.Group(list(net(mx.sym.var('data')))).tojson()
    assert 'ROIPooling' in graph and 'ROIAlign' not in graph
    assert [p.shape for name, p in net.box_features.collect_params().items()
            if name.endswith('bias')] == [(16,)]


@pytest.mark.parametrize('build, widths', [(tiny_faster_rcnn, (16, 32, 48, 64, 80)),
                                           (tiny_ssd, (16, 32, 64, 64, 64, 64, 64))])
def test_a_wrong_number_of_channels_is_refused(build, widths):
    with pytest.raises(ValueError, match='channels must hold'):
        build(['a'], channels=widths)


def test_tiny_ssd_predicts_every_anchor():
    net = tiny_ssd(['a', 'b'])
    net.initialize()
    with autograd.train_mode():
        cls_preds, box_preds, anchors = net(nd.random.uniform(shape=(2, 3, 128, 128)))
    assert cls_preds.shape == (2, anchors.shape[1], 3)
    assert box_preds.shape == (2, anchors.shape[1], 4)
    # the first of the six maps: 16 x 16 positions at stride 8, four anchors a position,
    # centred on its cells (4, 12, ..., 124 px)
    first = anchors.asnumpy()[0, :16 * 16 * 4]
    assert anchors.shape[1] == 1412
    assert sorted(set(first[:, 0])) == sorted(set(first[:, 1])) == list(range(4, 128, 8))
    mx.nd.waitall()


@pytest.mark.parametrize('size, cells', [(128, (16, 8, 4, 2, 1, 1)), (96, (12, 6, 3, 2, 1, 1)),
                                         (300, (38, 19, 10, 5, 3, 2))])
def test_tiny_ssd_centres_every_maps_anchors_on_the_image(size, cells):
    # before: steps 8 to 256 whatever the input, so at 128 px the last 1x1 map's anchors
    # sat on the image's corner (128, 128), out of reach of most objects
    net = tiny_ssd(['a'], base_size=size)
    net.initialize()
    with autograd.train_mode():
        anchors = net(nd.zeros((1, 3, size, size)))[2].asnumpy()[0]      # (N, 4) cx, cy, w, h
    per_cell = [4, 4, 6, 6, 6, 6]                                        # anchors a position
    ends = np.cumsum([n * n * k for n, k in zip(cells, per_cell)])
    assert ends[-1] == len(anchors)
    for level, (start, end) in enumerate(zip([0] + list(ends[:-1]), ends)):
        centres = sorted(set(anchors[start:end, 0]))
        step = size / cells[level]
        assert_allclose(centres, (np.arange(cells[level]) + 0.5) * step, rtol=1e-5)
    mx.nd.waitall()
