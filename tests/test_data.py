"""The synthetic VOC dataset: deterministic files that GluonCV's VOCDetection reads."""
import hashlib
import os
import pathlib
import stat
from xml.etree import ElementTree

import gluoncv
import mxnet as mx
import numpy as np
import pytest
from gluoncv.data.batchify import FasterRCNNTrainBatchify, Pad, Stack, Tuple
from gluoncv.data.transforms.presets.rcnn import FasterRCNNDefaultTrainTransform
from mxnet import autograd
from numpy.testing import assert_array_equal
from PIL import Image

import gluonmine.data
from gluonmine.data import (CLASSES, NonEmptyLabels, PadEmptyLabels, SyntheticVOCDetection,
                            VOCFormatDetection, annotation_xml, make_synthetic_voc,
                            padding_label, render)
from gluonmine.models import tiny_faster_rcnn
from gluonmine.transforms import FasterRCNNTrainTransform

SMALL = dict(num_train=40, num_val=10)


@pytest.fixture(scope='module')
def root(voc_root):
    """The default dataset (300 train, 100 val images): conftest's, written once a session."""
    return voc_root


@pytest.fixture(scope='module')
def train(root):
    return SyntheticVOCDetection(root, splits=((2007, 'train'),))


@pytest.fixture(scope='module')
def labels(train):
    return [train[i][1] for i in range(len(train))]


def digest(directory):
    """{relative path: sha1} of every file under directory."""
    out = {}
    for base, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(base, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, directory)] = hashlib.sha1(f.read()).hexdigest()
    return out


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path):
    first = make_synthetic_voc(str(tmp_path / 'a'), seed=3, **SMALL)
    second = make_synthetic_voc(str(tmp_path / 'b'), seed=3, **SMALL)
    other = make_synthetic_voc(str(tmp_path / 'c'), seed=4, **SMALL)
    assert first.endswith('VOC2007')
    # 50 images + 50 annotations + 2 split lists + the manifest
    assert len(digest(first)) == 103
    assert digest(first) == digest(second)
    changed = {k for k, v in digest(other).items() if digest(first).get(k) != v}
    assert len(changed) > 90
    # no image of seed 3 reappears, under another number, in seed 4's dataset
    images = [{v for k, v in digest(d).items() if k.endswith('.jpg')} for d in (first, other)]
    assert len(images[0]) == 50 and not images[0] & images[1]


def test_layout_is_a_vocdevkit(tmp_path):
    directory = make_synthetic_voc(str(tmp_path), **SMALL)
    splits = pathlib.Path(directory, 'ImageSets', 'Main')
    train_ids = (splits / 'train.txt').read_text().split()
    val_ids = (splits / 'val.txt').read_text().split()
    assert len(train_ids) == 40 and len(val_ids) == 10 and not set(train_ids) & set(val_ids)
    for image_id in train_ids + val_ids:
        assert os.path.exists(os.path.join(directory, 'JPEGImages', image_id + '.jpg'))
        assert os.path.exists(os.path.join(directory, 'Annotations', image_id + '.xml'))


def test_each_object_is_drawn_exactly_on_its_pixel_extent():
    # the object drawn last is on top: the pixels of its fill colour around its box are
    # exactly [x1, x2) x [y1, y2), the extent the annotation records
    checked = 0
    for i in range(12):
        image, objects = render(np.random.default_rng([0, i]), 180, 170)
        if not objects:
            continue
        _, (x1, y1, x2, y2) = objects[-1]
        pixels = np.asarray(image).astype(int)
        colour = pixels[(y1 + y2) // 2, (x1 + x2) // 2]
        left, top = max(x1 - 2, 0), max(y1 - 2, 0)
        ys, xs = np.nonzero((pixels[top:y2 + 2, left:x2 + 2] == colour).all(axis=-1))
        assert (xs.min() + left, ys.min() + top, xs.max() + 1 + left, ys.max() + 1 + top) == \
            (x1, y1, x2, y2)
        checked += 1
    assert checked >= 10


def test_objects_stay_inside_the_image_and_overlap_moderately():
    # every object lies in the image; two objects overlap by IoU <= 0.35 and neither covers
    # more than half of the other
    for i in range(60):
        rng = np.random.default_rng([1, i])
        _, objects = render(rng, 160, 200)
        boxes = np.array([box for _, box in objects], 'float64').reshape(-1, 4)
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 160).all()
        assert (boxes[:, 3] <= 200).all()
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                iw = min(boxes[a, 2], boxes[b, 2]) - max(boxes[a, 0], boxes[b, 0])
                ih = min(boxes[a, 3], boxes[b, 3]) - max(boxes[a, 1], boxes[b, 1])
                inter = max(iw, 0) * max(ih, 0)
                assert inter / (area[a] + area[b] - inter) <= 0.35
                assert inter <= 0.5 * min(area[a], area[b])


def test_every_image_has_look_alike_distractors(monkeypatch):
    # the shapes drawn that are not objects: 1 to 4 an image; hollow ones at least 28 px
    # wide, their stroke at most a ninth of that
    drawn = []
    draw_shape = gluonmine.data._draw_shape         # pylint: disable=protected-access

    def record(draw, name, box, fill=None, outline=None, width=1):
        drawn.append((name, box, outline, width))
        draw_shape(draw, name, box, fill, outline, width)
    monkeypatch.setattr(gluonmine.data, '_draw_shape', record)
    hollow = 0
    for i in range(30):
        del drawn[:]
        _, objects = render(np.random.default_rng([0, i]), 180, 170)
        distractors = [d for d in drawn if (d[0], d[1]) not in objects]
        assert 1 <= len(distractors) <= 4 and len(drawn) == len(distractors) + len(objects)
        for _, (x1, y1, x2, y2), outline, width in distractors:
            if outline is not None:
                hollow += 1
                assert min(x2 - x1, y2 - y1) >= 28 and 2 <= width <= min(x2 - x1, y2 - y1) // 9
    assert hollow > 5


def test_annotation_has_the_usual_voc_fields():
    # a 30x20 px object at pixels [10, 40) x [5, 25) -> VOC's 1-based inclusive 11, 6, 40, 25
    root = annotation_xml('000007.jpg', 180, 170, [('disc', (10, 5, 40, 25))])
    assert root.find('filename').text == '000007.jpg'
    assert [root.find('size/' + k).text for k in ('width', 'height', 'depth')] == \
        ['180', '170', '3']
    obj = root.find('object')
    assert [obj.find(k).text for k in ('name', 'pose', 'truncated', 'difficult')] == \
        ['disc', 'Unspecified', '0', '0']
    assert [obj.find('bndbox/' + k).text for k in ('xmin', 'ymin', 'xmax', 'ymax')] == \
        ['11', '6', '40', '25']


def test_voc_detection_reads_it_like_a_real_vocdevkit(root, train, labels):
    val = SyntheticVOCDetection(root, splits=((2007, 'val'),))
    assert isinstance(train, gluoncv.data.VOCDetection)
    assert (len(train), len(val)) == (300, 100)
    assert train.classes == list(CLASSES) or tuple(train.classes) == CLASSES
    image, label = train[0]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert 160 <= image.shape[0] <= 200 and 160 <= image.shape[1] <= 200
    rows = np.concatenate(labels)
    assert rows.shape[1] == 6
    assert set(rows[:, 4].astype(int)) == {0, 1, 2}            # every class present
    assert (rows[:, 5] == 0).all()                              # difficult = 0
    # GluonCV's reader maps pixel extents back to 0-based corners
    assert (rows[:, 0] >= 0).all() and (rows[:, 2] > rows[:, 0]).all()


def test_the_dataset_has_what_mining_needs(labels):
    counts = np.array([len(label) for label in labels])
    rows = np.concatenate(labels)
    sides = np.minimum(rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1])
    assert 15 <= (counts == 0).sum() <= 50                      # ~10% images without objects
    assert counts.max() == 5
    assert (sides < 20).sum() > 50 and sides.max() > 60         # small and large objects
    overlapping = sum(_overlaps(label) for label in labels)
    assert overlapping > 20                                     # pairs of touching objects


def _overlaps(label):
    boxes = label[:, :4]
    count = 0
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            count += iw > 0 and ih > 0
    return count


def test_the_reader_keeps_every_object_written(root, labels):
    # GluonCV drops, with a warning, an object outside its image: none may be
    annotations = os.path.join(root, 'VOC2007', 'Annotations')
    written = [len(ElementTree.parse(os.path.join(annotations, '{:06d}.xml'.format(i)))
                   .getroot().findall('object')) for i in range(len(labels))]
    assert written == [len(label) for label in labels]


def test_an_image_without_objects_gives_a_0_by_6_label(root, train, labels):
    empty = [i for i, label in enumerate(labels) if len(label) == 0][0]
    assert train[empty][1].shape == (0, 6)
    # GluonCV's own reader gives (0,) for the same annotation: the reason for the subclass
    class PlainReader(gluoncv.data.VOCDetection):
        CLASSES = CLASSES
    plain = PlainReader(root, splits=((2007, 'train'),))
    assert plain[empty][1].shape == (0,)
    xml = ElementTree.parse(os.path.join(root, 'VOC2007', 'Annotations',
                                         '{:06d}.xml'.format(empty))).getroot()
    assert xml.find('object') is None


def test_voc_format_reader_takes_its_classes(root, train):
    named = VOCFormatDetection(root, splits=((2007, 'train'),), classes=CLASSES)
    assert named.classes == CLASSES and len(named) == len(train)
    assert all((named[i][1] == train[i][1]).all() for i in range(10))
    assert VOCFormatDetection.CLASSES == gluoncv.data.VOCDetection.CLASSES   # default: VOC's
    for bad in ([], ['disc', 'disc'], ['Disc'], [' disc'], [3], [''], ['disc', ['square']]):
        with pytest.raises(ValueError, match='classes must be distinct'):
            VOCFormatDetection(root, splits=((2007, 'train'),), classes=bad)
    with pytest.raises(ValueError, match="the string 'disc'"):
        VOCFormatDetection(root, splits=((2007, 'train'),), classes='disc')


def test_object_counts_come_from_the_annotations(root, train, labels):
    want = np.bincount(np.concatenate([label[:, 4] for label in labels]).astype(int),
                       minlength=len(CLASSES))
    assert train.object_counts().tolist() == want.tolist() and want.all()
    unloaded = VOCFormatDetection(root, splits=((2007, 'train'),), classes=CLASSES,
                                  preload_label=False)
    assert unloaded.object_counts().tolist() == want.tolist()
    others = VOCFormatDetection(root, splits=((2007, 'train'),), classes=['cat'])
    assert others.object_counts().tolist() == [0]


def test_a_subclass_with_upper_case_classes_is_refused(root):
    # GluonCV lower-cases annotation names: 'Disc' would silently match no object
    class Shouting(VOCFormatDetection):
        CLASSES = ('Disc', 'square', 'triangle')
    with pytest.raises(ValueError, match='lower case'):
        Shouting(root, splits=((2007, 'train'),))


def test_existing_dataset_is_reused_and_a_different_one_refused(tmp_path):
    directory = make_synthetic_voc(str(tmp_path), **SMALL)
    marker = os.path.join(directory, 'JPEGImages', '000000.jpg')
    mtime = os.path.getmtime(marker)
    assert make_synthetic_voc(str(tmp_path), **SMALL) == directory
    assert os.path.getmtime(marker) == mtime                    # not written again
    with pytest.raises(ValueError, match='different dataset'):
        make_synthetic_voc(str(tmp_path), seed=1, **SMALL)
    assert not [n for n in os.listdir(str(tmp_path)) if n.startswith('.')]   # no scratch left


def test_a_failed_write_leaves_nothing_and_a_concurrent_writers_copy_is_kept(
        tmp_path, monkeypatch):
    def failing(rng, width, height):
        raise RuntimeError('disk full')
    with monkeypatch.context() as patch:
        patch.setattr(gluonmine.data, 'render', failing)
        with pytest.raises(RuntimeError, match='disk full'):
            make_synthetic_voc(str(tmp_path), num_train=2, num_val=0)
    assert os.listdir(str(tmp_path)) == []                      # no scratch, no half dataset
    # another worker renames its copy into place first: ours fails to rename, theirs is used
    theirs, rename = make_synthetic_voc(str(tmp_path / 'other'), num_train=2, num_val=0), os.rename

    def lost_race(scratch, target):
        rename(theirs, target)
        raise OSError('Directory not empty')
    monkeypatch.setattr(gluonmine.data.os, 'rename', lost_race)
    directory = make_synthetic_voc(str(tmp_path), num_train=2, num_val=0)
    assert sorted(os.listdir(str(tmp_path))) == ['VOC2007', 'other']
    assert len(os.listdir(os.path.join(directory, 'JPEGImages'))) == 2


def test_size_range_bounds_are_both_drawn_and_a_val_split_may_be_empty(tmp_path):
    fixed = make_synthetic_voc(str(tmp_path / 'fixed'), num_train=2, num_val=0,
                               size_range=(96, 96))
    assert (pathlib.Path(fixed, 'ImageSets', 'Main', 'val.txt').read_text()) == ''
    sizes = set()
    for directory in (fixed, make_synthetic_voc(str(tmp_path / 'two'), num_train=10,
                                                num_val=0, size_range=(96, 97))):
        for name in sorted(os.listdir(os.path.join(directory, 'JPEGImages'))):
            with Image.open(os.path.join(directory, 'JPEGImages', name)) as image:
                sizes.update(image.size)
        if directory == fixed:
            assert sizes == {96}
    assert sizes == {96, 97}


@pytest.mark.parametrize('umask, mode', [(0o022, 0o755), (0o027, 0o750)])
def test_the_dataset_directory_has_the_mode_makedirs_gives(tmp_path, umask, mode):
    shared = tmp_path / 'shared'
    shared.mkdir()
    os.chmod(str(shared), 0o2775)                               # a group's setgid directory
    before = os.umask(umask)
    try:
        directory = make_synthetic_voc(str(shared), **SMALL)
        assert os.umask(umask) == umask                         # the umask was left alone
    finally:
        os.umask(before)
    # not tempfile.mkdtemp's 0700, and the setgid bit a shared group's folder passes on
    assert stat.S_IMODE(os.stat(directory).st_mode) == stat.S_ISGID | mode


@pytest.mark.parametrize('kwargs, name', [
    (dict(num_train=0), 'num_train'), (dict(num_val=-1), 'num_val'), (dict(seed=-1), 'seed'),
    (dict(size_range=(50, 60)), r'size_range\[0\]'),
    (dict(size_range=(200, 160)), r'size_range\[1\]')])
def test_bad_arguments_raise_value_error_naming_them(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_synthetic_voc(str(tmp_path), **kwargs)


def test_padding_label():
    label = np.array([[1, 2, 3, 4, 0, 0]], dtype='float32')
    assert padding_label(label) is label or (padding_label(label) == label).all()
    assert_array_equal(padding_label(np.zeros((0, 6))), -np.ones((1, 6)))
    assert_array_equal(padding_label(np.array([])), -np.ones((1, 6)))      # GluonCV's (0,)
    assert padding_label(np.zeros((0, 5), 'float32')).shape == (1, 5)


def test_non_empty_labels_lets_pad_batch_images_without_objects():
    image = np.zeros((3, 4, 4), 'float32')
    batchify = NonEmptyLabels(Tuple(Stack(), Pad(pad_val=-1)))
    _, labels = batchify([(image, np.zeros((0, 6))), (image, np.zeros((0, 6)))])
    assert labels.shape == (2, 1, 6) and (labels.asnumpy() == -1).all()
    box = np.array([[1, 2, 3, 4, 2, 0], [5, 6, 7, 8, 1, 0]], 'float32')
    _, labels = batchify([(image, np.zeros((0, 6))), (image, box)])
    assert labels.shape == (2, 2, 6)
    assert (labels.asnumpy()[0] == -1).all() and (labels.asnumpy()[1] == box).all()


@pytest.fixture(scope='module')
def net():
    net = tiny_faster_rcnn(list(CLASSES), per_device_batch_size=2)
    net.initialize()
    return net


def test_gluoncv_transform_needs_pad_empty_labels(net):
    image = mx.nd.array(np.random.RandomState(0).randint(0, 255, (170, 190, 3)), dtype='uint8')
    transform = FasterRCNNDefaultTrainTransform(net.short, net.max_size, net)
    with pytest.raises(mx.base.MXNetError):
        transform(image, np.zeros((0, 6)))
    img, bbox, cls_target, _, _ = PadEmptyLabels(transform)(image, np.zeros((0, 6)))
    assert bbox.shape == (1, 6) and (bbox == -1).all()
    assert (cls_target[0] == 1).sum() == 0 and (cls_target[0] == 0).sum() == 256


def test_a_batch_of_images_without_objects_trains(net, train, labels):
    # two object-less images through gluonmine's transform, GluonCV's batchify and the
    # network's training forward: only negatives, finite outputs, no shape error
    empty = [i for i, label in enumerate(labels) if len(label) == 0][:2]
    transform = FasterRCNNTrainTransform(net.short, net.max_size, net, flip_p=0.)
    batch = NonEmptyLabels(FasterRCNNTrainBatchify(net))(
        [transform(*train[i]) for i in empty])
    data, label, rpn_cls = batch[0], batch[1], batch[2][0]
    assert label.shape == (2, 1, 6) and (label.asnumpy() == -1).all()
    assert (rpn_cls.asnumpy() == 1).sum() == 0
    with autograd.train_mode():
        outputs = net(data.as_in_context(mx.cpu()), label[:, :, :4].as_in_context(mx.cpu()),
                      label[:, :, 4:5].as_in_context(mx.cpu()))
    samples, cls_targets = outputs[3].asnumpy(), outputs[8].asnumpy()
    assert (samples <= 0).all() and (cls_targets <= 0).all()    # nothing positive
    assert np.isfinite(outputs[0].asnumpy()).all()
