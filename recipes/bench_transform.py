"""RPN targets where GluonCV makes them: in the DataLoader's training transform.

GluonCV's ``FasterRCNNDefaultTrainTransform`` against gluonmine's
``FasterRCNNTrainTransform`` (hybridized generator), one image a call as a
DataLoader worker runs them: resize, flip, normalise, then RPN targets. Two
networks: the recipe's tiny one (128 px short side, about 3,000 anchors) and
GluonCV's C4 ``faster_rcnn_resnet50_v1b_voc`` layout (600 px, about 36,000
anchors), built without weights; 10 ground truths an image.
"""
import mxnet as mx
import numpy as np
from gluoncv.data.transforms.presets.rcnn import FasterRCNNDefaultTrainTransform
from gluoncv.model_zoo import get_model

from _timing import fastest, speed_columns
from gluonmine.models import tiny_faster_rcnn
from gluonmine.transforms import FasterRCNNTrainTransform

NAME = 'transform'
TITLE = 'RPN targets in the training transform, per image'
NUM_GT = 10


def networks():
    """(name, net, image height, image width) for each layout."""
    tiny = tiny_faster_rcnn(['disc', 'square', 'triangle'])
    tiny.initialize()
    c4 = get_model('faster_rcnn_resnet50_v1b_voc', pretrained=False, pretrained_base=False)
    c4.initialize()
    return [('tiny (recipe)', tiny, 240, 320), ('C4 resnet50_v1b', c4, 375, 500)]


def example(rng, height, width):
    """A uint8 image (H, W, 3) and NUM_GT labelled boxes (NUM_GT, 6)."""
    image = mx.nd.array(rng.integers(0, 256, (height, width, 3)), dtype='uint8')
    corner = rng.uniform(0, 0.7, (NUM_GT, 2)) * (width, height)
    size = rng.uniform(0.05, 0.3, (NUM_GT, 2)) * (width, height)
    label = np.concatenate([corner, corner + size, rng.integers(0, 3, (NUM_GT, 1)),
                            np.zeros((NUM_GT, 1))], axis=1).astype('float32')
    return image, label


def check_same_layout(theirs, ours):
    """Both give the same image and boxes (same NumPy seed: the same flip) and
    targets of the same shapes."""
    np.random.seed(0)
    want = theirs()
    np.random.seed(0)
    got = ours()
    for a, b in zip(want[:2], got[:2]):
        np.testing.assert_array_equal(a.asnumpy() if hasattr(a, 'asnumpy') else a,
                                      b.asnumpy() if hasattr(b, 'asnumpy') else b)
    assert [np.shape(x) for x in want] == [np.shape(x) for x in got]


def run(quick):
    repeat = 5 if quick else 30
    rng = np.random.default_rng(0)
    rows = []
    for name, net, height, width in networks():
        image, label = example(rng, height, width)
        theirs = FasterRCNNDefaultTrainTransform(net.short, net.max_size, net)
        ours = FasterRCNNTrainTransform(net.short, net.max_size, net)
        check_same_layout(lambda: theirs(image, label), lambda: ours(image, label))
        times = fastest([lambda: theirs(image, label), lambda: ours(image, label)], repeat,
                        rounds=3)
        anchors = int(np.size(ours(image, label)[2]))          # cls_target, one per anchor
        rows.append(dict(network=name, image='{}x{}'.format(height, width), anchors=anchors,
                         gts=NUM_GT, **speed_columns(*times)))
    columns = ['network', 'image', 'anchors', 'gts', 'gluoncv_ms', 'gluonmine_ms', 'speedup']
    notes = ['Whole transform calls (resize, flip, normalise, RPN targets), one image each, '
             'in the main process; fastest of 3 interleaved rounds of {} calls. gluonmine\'s '
             'generator runs hybridized for one image at a time here; on the device it runs '
             'on the whole batch (`--only rpn`).'.format(repeat)]
    return columns, rows, notes
