"""A synthetic detection dataset in Pascal VOC format, and reading it with GluonCV.

Nothing can be downloaded here, so the recipes train on data written to disk by
:func:`make_synthetic_voc`: JPEG images, VOC XML annotations and
``ImageSets/Main/{train,val}.txt`` under ``<root>/VOC<year>``, laid out exactly
as a real VOCdevkit, read by :class:`SyntheticVOCDetection`, a subclass of
GluonCV's own ``VOCDetection`` with its own ``CLASSES``. Its parent,
:class:`VOCFormatDetection`, reads any VOC-format dataset (a real VOCdevkit)
the same way.

Each image is a cluttered background (a colour gradient, noise, muted lines,
blobs and texture patches) with up to five objects of three classes, each a
filled shape in its own colour family: ``disc`` (red), ``square`` (blue),
``triangle`` (green). Look-alike distractors are not objects: the same shapes
hollow in the class colours, or filled in grey or off-palette colours. They are
the hard negatives online hard example mining exists for. Objects range from
small (12 px) to large (72 px) and may overlap; about one image in ten has no
object at all (only clutter and distractors). Everything is drawn from one seed:
the same arguments write byte-identical files.

Label rows follow GluonCV: ``(xmin, ymin, xmax, ymax, class_id, difficult)``;
an image without objects gives a ``(0, 6)`` array, and :class:`NonEmptyLabels`
makes GluonCV's batchify functions accept it.
"""
import json
import os
import shutil
import uuid
from xml.etree import ElementTree

import numpy as np
from gluoncv.data import VOCDetection
from PIL import Image, ImageDraw

from . import _checks

CLASSES = ('disc', 'square', 'triangle')
# class colour families: (hue centre, hue spread) in degrees on the HSV wheel
_HUES = {'disc': (0., 12.), 'square': (220., 15.), 'triangle': (120., 15.)}
# off-palette hues for filled distractors: yellow, purple, cyan (far from every class hue)
_DISTRACTOR_HUES = (60., 290., 185.)
_FORMAT_VERSION = 1


def _colour(rng, hue, spread, saturation=(0.65, 1.0), value=(0.55, 0.95)):
    """An RGB tuple with hue ``hue +- spread`` degrees and the given S and V ranges."""
    h = ((hue + rng.uniform(-spread, spread)) % 360.) / 60.
    s, v = rng.uniform(*saturation), rng.uniform(*value)
    c = v * s
    x = c * (1 - abs(h % 2 - 1))
    rgb = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    return tuple(int(round(255 * (channel + v - c))) for channel in rgb)


def _muted(rng):
    """A low-saturation colour for background clutter."""
    return _colour(rng, rng.uniform(0, 360), 0., saturation=(0., 0.3), value=(0.2, 0.9))


def _background(rng, width, height):
    """A gradient with noise: (height, width, 3) uint8."""
    corners = rng.uniform(40, 215, size=(2, 2, 3))
    ys = np.linspace(0, 1, height)[:, None, None]
    xs = np.linspace(0, 1, width)[None, :, None]
    top = corners[0, 0] * (1 - xs) + corners[0, 1] * xs            # (1, W, 3)
    bottom = corners[1, 0] * (1 - xs) + corners[1, 1] * xs          # (1, W, 3)
    image = top * (1 - ys) + bottom * ys                            # (H, W, 3)
    image = image + rng.normal(0, 12, size=(height, width, 3))      # (H, W, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def _clutter(rng, draw, width, height):
    """Muted lines, blobs and striped patches all over the image."""
    for _ in range(rng.integers(6, 14)):
        points = [tuple(rng.uniform(0, (width, height))) for _ in range(2)]
        draw.line(points, fill=_muted(rng), width=int(rng.integers(1, 4)))
    for _ in range(rng.integers(3, 8)):
        x, y = rng.uniform(0, (width, height))
        w, h = rng.uniform(4, 30, size=2)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x, y, x + w, y + h], fill=_muted(rng))
    for _ in range(rng.integers(1, 4)):
        x, y = rng.uniform(0, (width, height))
        size, step = rng.uniform(15, 45), int(rng.integers(3, 7))
        colour = _muted(rng)
        for offset in range(0, int(size), step):
            draw.line([(x + offset, y), (x + offset, y + size)], fill=colour, width=1)


def _outline(name, box):
    """The drawing call's arguments for a shape filling box (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = box
    if name == 'triangle':
        return 'polygon', [((x1 + x2) / 2., y1), (x2, y2), (x1, y2)]
    return ('ellipse' if name == 'disc' else 'rectangle'), [x1, y1, x2, y2]


def _draw_shape(draw, name, box, fill=None, outline=None, width=1):
    """Draw shape ``name`` so that its extent is the pixel box [x1, x2) x [y1, y2)."""
    x1, y1, x2, y2 = box
    method, xy = _outline(name, (x1, y1, x2 - 1, y2 - 1))
    if method == 'polygon':
        draw.polygon(xy, fill=fill, outline=outline, width=width)
    else:
        getattr(draw, method)(xy, fill=fill, outline=outline, width=width)


def _overlap_ok(box, boxes, max_iou=0.35, max_cover=0.5):
    """True when box overlaps each of boxes by IoU <= max_iou and covers <= max_cover of it."""
    for other in boxes:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw <= 0 or ih <= 0:
            continue
        inter = float(iw * ih)
        area, other_area = _area(box), _area(other)
        if inter / (area + other_area - inter) > max_iou or inter / other_area > max_cover \
                or inter / area > max_cover:
            return False
    return True


def _area(box):
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _place(rng, width, height, boxes, small):
    """A random square box (x1, y1, x2, y2) inside the image overlapping boxes moderately."""
    for _ in range(30):
        side = int(rng.integers(12, 22) if small else rng.integers(22, 73))
        x1, y1 = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        w = side if rng.random() < 0.5 else int(side * rng.uniform(0.75, 1.25))
        box = (x1, y1, min(x1 + w, width), y1 + side)
        if _overlap_ok(box, boxes):
            return box
    return None


def _distractor(rng, draw, box):
    """A look-alike: a class shape drawn hollow in its colours, or filled off-palette.

    Hollow ones are at least 28 px wide with a stroke of at most a ninth of
    that, so they never look filled.
    """
    name = CLASSES[int(rng.integers(len(CLASSES)))]
    side = min(box[2] - box[0], box[3] - box[1])
    if rng.random() < 0.5 and side >= 28:
        colour = _colour(rng, *_HUES[name])
        thickness = int(rng.integers(2, side // 9 + 1))
        _draw_shape(draw, name, box, outline=colour, width=thickness)
    else:
        hue = _DISTRACTOR_HUES[int(rng.integers(len(_DISTRACTOR_HUES)))]
        grey = rng.random() < 0.3
        colour = _colour(rng, hue, 8., saturation=(0., 0.1) if grey else (0.6, 1.0))
        _draw_shape(draw, name, box, fill=colour)


def render(rng, width, height):
    """One synthetic image and its objects.

    Returns
    -------
    image : PIL.Image.Image
        RGB, ``width`` x ``height``.
    objects : list of (str, (int, int, int, int))
        Class name and pixel extent ``[x1, x2) x [y1, y2)`` of each object.
    """
    image = Image.fromarray(_background(rng, width, height))
    draw = ImageDraw.Draw(image)
    _clutter(rng, draw, width, height)
    num_objects = 0 if rng.random() < 0.1 else int(rng.integers(1, 6))
    taken = []
    for _ in range(int(rng.integers(1, 5))):        # distractors first: objects cover them
        box = _place(rng, width, height, [], small=rng.random() < 0.3)
        if box is not None:
            _distractor(rng, draw, box)
    objects = []
    for _ in range(num_objects):
        box = _place(rng, width, height, taken, small=rng.random() < 0.3)
        if box is None:
            continue
        name = CLASSES[int(rng.integers(len(CLASSES)))]
        _draw_shape(draw, name, box, fill=_colour(rng, *_HUES[name]))
        taken.append(box)
        objects.append((name, box))
    return image, objects


def annotation_xml(filename, width, height, objects):
    """A VOC annotation (``ElementTree`` root) with the usual fields.

    Boxes are written in VOC's 1-based inclusive pixel coordinates: pixel extent
    ``[x1, x2)`` becomes ``xmin = x1 + 1``, ``xmax = x2``.
    """
    root = ElementTree.Element('annotation')
    _text(root, 'folder', 'VOC')
    _text(root, 'filename', filename)
    source = ElementTree.SubElement(root, 'source')
    _text(source, 'database', 'gluonmine synthetic')
    size = ElementTree.SubElement(root, 'size')
    for tag, value in (('width', width), ('height', height), ('depth', 3)):
        _text(size, tag, value)
    _text(root, 'segmented', 0)
    for name, (x1, y1, x2, y2) in objects:
        obj = ElementTree.SubElement(root, 'object')
        for tag, value in (('name', name), ('pose', 'Unspecified'), ('truncated', 0),
                           ('difficult', 0)):
            _text(obj, tag, value)
        bndbox = ElementTree.SubElement(obj, 'bndbox')
        for tag, value in (('xmin', x1 + 1), ('ymin', y1 + 1), ('xmax', x2), ('ymax', y2)):
            _text(bndbox, tag, value)
    return root


def _text(parent, tag, value):
    ElementTree.SubElement(parent, tag).text = str(value)


def _manifest(num_train, num_val, seed, size_range):
    return {'format': _FORMAT_VERSION, 'classes': list(CLASSES), 'num_train': num_train,
            'num_val': num_val, 'seed': seed, 'size_range': list(size_range)}


def make_synthetic_voc(root, num_train=300, num_val=100, seed=0, year=2007,
                       size_range=(160, 200)):
    """Write the synthetic dataset under ``<root>/VOC<year>`` unless it is already there.

    Image ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` with width
    and height uniform in ``size_range``; images ``0 .. num_train - 1`` form the
    ``train`` split, the next ``num_val`` the ``val`` split. The directory is
    written under a temporary name and renamed at the end, so an interrupted
    run leaves nothing half-made and concurrent callers (several workers on one
    machine) agree on one copy. ``<root>/VOC<year>/synthetic.json`` records the
    arguments; calling again with the same arguments returns at once.

    Parameters
    ----------
    root : str
        Parent directory (created if missing); read it with
        ``SyntheticVOCDetection(root, splits=((year, 'train'),))``.
    num_train : int, default 300
        Images in the ``train`` split.
    num_val : int, default 100
        Images in the ``val`` split.
    seed : int, default 0
        Seed of every drawing decision.
    year : int, default 2007
        The ``VOC<year>`` folder name.
    size_range : tuple of 2 int, default (160, 200)
        Smallest and largest image side in pixels.

    Returns
    -------
    str
        The ``<root>/VOC<year>`` directory.

    Raises
    ------
    ValueError
        A bad argument, or a dataset made with other arguments already at that place.
    """
    _checks.check_int('num_train', num_train, low=1)
    _checks.check_int('num_val', num_val, low=0)
    _checks.check_int('seed', seed, low=0)
    low, high = size_range
    _checks.check_int('size_range[0]', low, low=96)
    _checks.check_int('size_range[1]', high, low=low)
    manifest = _manifest(num_train, num_val, seed, size_range)
    target = os.path.join(os.path.expanduser(root), 'VOC{}'.format(year))
    if os.path.isdir(target):
        return _check_existing(target, manifest)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    # os.mkdir, not tempfile.mkdtemp (mode 0700): the umask and a setgid parent apply,
    # so other users' workers can read the dataset
    scratch = os.path.join(os.path.dirname(target), '.VOC{}-{}'.format(year, uuid.uuid4().hex))
    os.mkdir(scratch)
    try:
        _write(scratch, manifest)
        os.rename(scratch, target)
    except OSError:
        if not os.path.isdir(target):       # not a concurrent writer that won the race
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _check_existing(target, manifest)


def _check_existing(target, manifest):
    path = os.path.join(target, 'synthetic.json')
    try:
        with open(path) as f:
            found = json.load(f)
    except (OSError, ValueError):
        found = None
    if found != manifest:
        raise ValueError('{} holds a different dataset ({}); remove it or choose another '
                         'root to write {}'.format(target, found, manifest))
    return target


def _write(directory, manifest):
    """Write images, annotations, split lists and the manifest into directory."""
    for sub in ('JPEGImages', 'Annotations', os.path.join('ImageSets', 'Main')):
        os.makedirs(os.path.join(directory, sub))
    low, high = manifest['size_range']
    num_train = manifest['num_train']
    ids = ['{:06d}'.format(i) for i in range(num_train + manifest['num_val'])]
    for i, image_id in enumerate(ids):
        rng = np.random.default_rng([manifest['seed'], i])
        width, height = (int(v) for v in rng.integers(low, high + 1, size=2))
        image, objects = render(rng, width, height)
        image.save(os.path.join(directory, 'JPEGImages', image_id + '.jpg'), quality=90)
        xml = annotation_xml(image_id + '.jpg', width, height, objects)
        ElementTree.ElementTree(xml).write(
            os.path.join(directory, 'Annotations', image_id + '.xml'))
    for split, names in (('train', ids[:num_train]), ('val', ids[num_train:])):
        with open(os.path.join(directory, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
            f.write(''.join(name + '\n' for name in names))
    with open(os.path.join(directory, 'synthetic.json'), 'w') as f:
        json.dump(manifest, f, indent=1)


def check_class_names(classes):
    """The class names as a tuple, checked to be names GluonCV can match.

    GluonCV lower-cases and strips every name it reads from an annotation, so a
    class named otherwise would silently match no object.

    Parameters
    ----------
    classes : sequence of str
        Class names in label order.

    Returns
    -------
    tuple of str
        ``classes``.

    Raises
    ------
    ValueError
        Unless ``classes`` holds at least one name, every one a non-empty
        string in lower case without surrounding spaces, none twice; a single
        string is refused, not split into letters.
    """
    if isinstance(classes, str):
        raise ValueError('classes must be a sequence of names, got the string '
                         '{!r}'.format(classes))
    classes = tuple(classes)
    if (not classes or any(not isinstance(c, str) or not c or c != c.strip().lower()
                           for c in classes) or len(set(classes)) != len(classes)):
        raise ValueError('classes must be distinct names, at least one, non-empty strings in '
                         'lower case without surrounding spaces (GluonCV lower-cases and strips '
                         'the names it reads); got {}'.format(list(classes)))
    return classes


class VOCFormatDetection(VOCDetection):
    """GluonCV's ``VOCDetection`` for any VOC-format dataset, images without objects included.

    Exactly GluonCV's reader (XML parsing, label cache, transforms; objects of
    other classes are skipped) with one fix: an image whose annotation has no
    object gives a ``(0, 6)`` label array where GluonCV's gives a ``(0,)`` one,
    so label slicing such as ``label[:, :4]`` (GluonCV's own transforms do it)
    works on every image. The classes are VOC's 20 ``CLASSES``, or your own
    dataset's through ``classes=`` (or a subclass with its own ``CLASSES``, as
    GluonCV's custom-dataset tutorial does).

    Parameters
    ----------
    root : str, default '~/.mxnet/datasets/voc'
        The VOCdevkit: the directory holding ``VOC<year>``.
    splits : tuple of (int, str), default ((2007, 'trainval'), (2012, 'trainval'))
        ``(year, name)`` pairs: ``ImageSets/Main/<name>.txt`` of ``VOC<year>``.
    transform : callable, default None
        ``transform(image, label)``, as for GluonCV's datasets.
    index_map : dict, default None
        Class name to index; ``None`` numbers ``CLASSES`` in order.
    preload_label : bool, default True
        Parse every annotation once at construction.
    classes : sequence of str, default None
        Class names as written in the annotations (in lower case), in label
        order; None: ``CLASSES``.
    """

    def __init__(self, root=os.path.join('~', '.mxnet', 'datasets', 'voc'),
                 splits=((2007, 'trainval'), (2012, 'trainval')), transform=None,
                 index_map=None, preload_label=True, classes=None):
        self._classes = check_class_names(type(self).CLASSES if classes is None else classes)
        super(VOCFormatDetection, self).__init__(root, splits, transform, index_map,
                                                 preload_label)

    @property
    def classes(self):
        """Class names, in label order."""
        return self._classes

    def object_counts(self):
        """Objects of each class in the annotations, difficult ones included: (C,) int64.

        Read from the labels GluonCV preloads (parsed again without
        ``preload_label``); no image is read.
        """
        labels = self._label_cache or [self._load_label(i) for i in range(len(self))]
        return np.bincount(np.concatenate([label[:, 4] for label in labels] + [[]])
                           .astype('int64'), minlength=len(self.classes))

    def _load_label(self, idx):
        """GluonCV's parser; labels (K, 6), K = 0 for an image without objects."""
        label = super(VOCFormatDetection, self)._load_label(idx)
        return label.reshape((-1, 6))


class SyntheticVOCDetection(VOCFormatDetection):
    """:class:`VOCFormatDetection` reading :func:`make_synthetic_voc`'s dataset.

    GluonCV's reader with this dataset's ``CLASSES`` and the empty-image fix.

    Parameters
    ----------
    root : str, default 'data/synthetic_voc'
        The directory holding ``VOC<year>``.
    splits : tuple of (int, str), default ((2007, 'train'),)
        ``(year, name)`` pairs; names are ``'train'`` and ``'val'``.
    transform : callable, default None
    index_map : dict, default None
    preload_label : bool, default True
        As for :class:`VOCFormatDetection`.
    """

    CLASSES = CLASSES

    def __init__(self, root=os.path.join('data', 'synthetic_voc'), splits=((2007, 'train'),),
                 transform=None, index_map=None, preload_label=True):
        super(SyntheticVOCDetection, self).__init__(root, splits, transform, index_map,
                                                    preload_label)


def padding_label(label):
    """``label`` itself, or one padding row of -1 when it has no rows.

    GluonCV's target generators and ``Pad`` batchify cannot handle an image
    without ground truth; a row of -1 is what ``Pad`` adds to shorter labels
    anyway, and every sampler treats it as "no object".
    """
    label = np.asarray(label)
    if label.size:
        return label
    width = label.shape[-1] if label.ndim == 2 else 6
    return np.full((1, width), -1, dtype=label.dtype if label.dtype.kind == 'f' else 'float32')


class NonEmptyLabels(object):
    """Wrap a batchify function so that images without objects are accepted.

    Each sample's label (item ``label_index``) that has no rows becomes one
    padding row of -1 (:func:`padding_label`) before ``batchify`` sees it, so
    ``FasterRCNNTrainBatchify``, ``Pad`` and ``Append`` never meet a
    zero-length array, even in a batch of empty images.

    Parameters
    ----------
    batchify : callable
        The batchify function to wrap, e.g. ``FasterRCNNTrainBatchify(net)``.
    label_index : int, default 1
        Position of the label in each sample tuple.
    """

    def __init__(self, batchify, label_index=1):
        self._batchify = batchify
        self._label_index = _checks.check_int('label_index', label_index)

    def __call__(self, data):
        i = self._label_index
        return self._batchify([tuple(sample[:i]) + (padding_label(sample[i]),)
                               + tuple(sample[i + 1:]) for sample in data])


class PadEmptyLabels(object):
    """Wrap a GluonCV training transform so that images without objects pass through it.

    GluonCV's transforms make their training targets from the label's boxes and
    fail on an image without any (``FasterRCNNDefaultTrainTransform``'s RPN
    target generator meets a ``(0, 4)`` array: an MXNet shape-inference error).
    This wrapper hands them one padding row of -1 instead (:func:`padding_label`),
    which GluonCV's samplers treat as "no object", and silences NumPy's
    warnings about encoding that padding box (its targets are masked out). The
    transform resizes and flips the padding box like any other; the returned
    label (item 1) has every row whose class id is negative set back to -1.

    Parameters
    ----------
    transform : callable
        ``transform(image, label)``, e.g. ``FasterRCNNDefaultTrainTransform(...)``.
    """

    def __init__(self, transform):
        self._transform = transform

    def __call__(self, image, label):
        with np.errstate(divide='ignore', invalid='ignore'):
            out = self._transform(image, padding_label(label))
        bbox = np.array(out[1])                                     # (M, 6)
        bbox[bbox[:, 4] < 0] = -1
        return (out[0], bbox) + tuple(out[2:])
