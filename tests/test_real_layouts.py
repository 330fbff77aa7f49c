"""The recipes on a real VOCdevkit and a real COCO layout (``--dataset voc`` / ``coco``).

Nothing can be downloaded, so both layouts are written here from a few
synthetic images, with the synthetic classes renamed to real ones: a
VOCdevkit (VOC2007 trainval and test, VOC2012 trainval; XML annotations) read
by ``gluonmine.data.VOCFormatDetection`` (GluonCV's ``VOCDetection``), and a
COCO root (``train2017/``, ``val2017/``,
``annotations/instances_*.json`` with all 80 categories) read by GluonCV's
``COCODetection`` through pycocotools. The validation images include one
without objects, which COCO keeps (as a -1 row) and VOC keeps (no row: GluonCV's
own reader gives a (0,) label there, which its transforms cannot slice;
``gluonmine.data.VOCFormatDetection`` gives (0, 6)). Last, ``recipes/coco_eval.py``'s
COCO metric on known detections: perfect, shifted, partial, none, misclassified.
"""
import json
import os
import shutil
import sys
from argparse import Namespace
from xml.etree import ElementTree

import mxnet as mx
import numpy as np
import pytest
from gluoncv.data import COCODetection, VOCDetection

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'recipes'))

import coco_eval  # noqa: E402  pylint: disable=wrong-import-position
import evaluate  # noqa: E402  pylint: disable=wrong-import-position
import evaluation  # noqa: E402  pylint: disable=wrong-import-position
import loaders  # noqa: E402  pylint: disable=wrong-import-position
import show_samples  # noqa: E402  pylint: disable=wrong-import-position
import train_faster_rcnn  # noqa: E402  pylint: disable=wrong-import-position
import train_ssd  # noqa: E402  pylint: disable=wrong-import-position

RENAME = {'disc': 'person', 'square': 'car', 'triangle': 'dog'}
IMAGES = 6                                      # a split of each layout


def _split(voc_root, name):
    """(folder, ids) of a synthetic split."""
    folder = os.path.join(voc_root, 'VOC2007')
    with open(os.path.join(folder, 'ImageSets', 'Main', name + '.txt')) as f:
        return folder, f.read().split()


def _annotation(folder, image_id):
    return ElementTree.parse(os.path.join(folder, 'Annotations', image_id + '.xml'))


def _splits(voc_root):
    """Training ids (2 x IMAGES) and validation ids (IMAGES, the last without objects)."""
    folder, train = _split(voc_root, 'train')
    _, val = _split(voc_root, 'val')
    empty = next(i for i in val if not _annotation(folder, i).getroot().findall('object'))
    val = [i for i in val if i != empty][:IMAGES - 1] + [empty]
    return folder, train[:2 * IMAGES], val


@pytest.fixture(scope='module')
def vocdevkit(voc_root, tmp_path_factory):
    """A VOCdevkit: VOC2007 trainval and test, VOC2012 trainval, VOC class names."""
    root = str(tmp_path_factory.mktemp('VOCdevkit'))
    folder, train, val = _splits(voc_root)
    parts = [(2007, 'trainval', train[:IMAGES]), (2012, 'trainval', train[IMAGES:]),
             (2007, 'test', val)]
    for year, name, ids in parts:
        out = os.path.join(root, 'VOC{}'.format(year))
        for sub in ('JPEGImages', 'Annotations', os.path.join('ImageSets', 'Main')):
            os.makedirs(os.path.join(out, sub), exist_ok=True)
        for image_id in ids:
            shutil.copy(os.path.join(folder, 'JPEGImages', image_id + '.jpg'),
                        os.path.join(out, 'JPEGImages'))
            tree = _annotation(folder, image_id)
            for obj in tree.getroot().iter('object'):
                obj.find('name').text = RENAME[obj.find('name').text]
            tree.write(os.path.join(out, 'Annotations', image_id + '.xml'))
        with open(os.path.join(out, 'ImageSets', 'Main', name + '.txt'), 'w') as f:
            f.write(''.join(i + '\n' for i in ids))
    return root


def _coco_split(folder, ids, root, split, category):
    """Copy the images of ``ids`` to root/split and return their COCO records."""
    os.makedirs(os.path.join(root, split))
    images, annotations = [], []
    for number, image_id in enumerate(ids, 1):
        shutil.copy(os.path.join(folder, 'JPEGImages', image_id + '.jpg'),
                    os.path.join(root, split))
        xml = _annotation(folder, image_id).getroot()
        images.append({'id': number, 'file_name': image_id + '.jpg',
                       'width': int(xml.find('size/width').text),
                       'height': int(xml.find('size/height').text),
                       'coco_url': 'http://images.cocodataset.org/{}/{}.jpg'.format(
                           split, image_id)})
        for obj in xml.iter('object'):
            x1, y1, x2, y2 = (float(obj.find('bndbox/' + k).text)
                              for k in ('xmin', 'ymin', 'xmax', 'ymax'))
            annotations.append({'id': len(annotations) + 1, 'image_id': number,
                                'category_id': category[RENAME[obj.find('name').text]],
                                'bbox': [x1, y1, x2 - x1, y2 - y1],
                                'area': (x2 - x1) * (y2 - y1), 'iscrowd': 0})
    return images, annotations


@pytest.fixture(scope='module')
def coco(voc_root, tmp_path_factory):
    """A COCO root: train2017, val2017 and their instances JSON, all 80 categories."""
    pytest.importorskip('pycocotools')
    root = str(tmp_path_factory.mktemp('coco'))
    folder, train, val = _splits(voc_root)
    category = {name: i for i, name in enumerate(COCODetection.CLASSES, 1)}
    categories = [{'id': i, 'name': name, 'supercategory': 'object'}
                  for name, i in category.items()]
    os.makedirs(os.path.join(root, 'annotations'))
    for split, ids in (('train2017', train[:IMAGES]), ('val2017', val)):
        images, annotations = _coco_split(folder, ids, root, split, category)
        with open(os.path.join(root, 'annotations', 'instances_{}.json'.format(split)), 'w') as f:
            json.dump({'images': images, 'annotations': annotations,
                       'categories': categories}, f)
    return root


def _datasets(dataset, root):
    return loaders.build_datasets(Namespace(dataset=dataset, dataset_root=root,
                                           num_train_images=None, num_val_images=None))


def test_vocdevkit_reads_07_12_trainval_and_07_test(vocdevkit):
    train, val, classes = _datasets('voc', vocdevkit)
    assert classes == list(VOCDetection.CLASSES)
    assert len(train) == 2 * IMAGES and len(val) == IMAGES
    labels = np.concatenate([train[i][1] for i in range(len(train))])
    names = {classes[int(c)] for c in labels[:, 4]}
    assert names == set(RENAME.values())                       # renamed classes, VOC indices
    assert val[IMAGES - 1][1].shape == (0, 6)                    # no objects: no rows, 6 columns


def test_coco_reads_train2017_and_val2017(coco):
    train, val, classes = _datasets('coco', coco)
    assert classes == list(COCODetection.CLASSES)
    assert len(train) <= IMAGES and len(val) == IMAGES          # training skips empty images
    assert val[IMAGES - 1][1].tolist() == [[-1, -1, -1, -1, -1]]
    labels = np.concatenate([train[i][1] for i in range(len(train))])
    assert {classes[int(c)] for c in labels[:, 4]} == set(RENAME.values())


def test_coco_training_skips_crowd_regions(coco, tmp_path):
    # as GluonCV trains on COCO (use_crowd=False): a crowd region is no object to find
    root = tmp_path / 'crowd'
    (root / 'annotations').mkdir(parents=True)
    for split in ('train2017', 'val2017'):
        os.symlink(os.path.join(coco, split), str(root / split))
    os.symlink(annotation(coco), str(root / 'annotations' / 'instances_val2017.json'))
    with open(os.path.join(coco, 'annotations', 'instances_train2017.json')) as f:
        data = json.load(f)
    crowd = data['annotations'][0]
    crowd['iscrowd'] = 1
    with open(str(root / 'annotations' / 'instances_train2017.json'), 'w') as f:
        json.dump(data, f)
    objects = [len(data['annotations']) - 1, len(data['annotations'])]
    for path, count in zip((str(root), coco), objects):
        train, _, _ = _datasets('coco', path)
        assert sum(len(train[i][1]) for i in range(len(train))) == count


@pytest.mark.parametrize('recipe', ['faster_rcnn', 'ssd'])
@pytest.mark.parametrize('dataset', ['voc', 'coco'])
def test_recipe_trains_and_evaluates_on_a_real_layout(request, tmp_path, recipe, dataset):
    root = request.getfixturevalue({'voc': 'vocdevkit', 'coco': 'coco'}[dataset])
    module = {'faster_rcnn': train_faster_rcnn, 'ssd': train_ssd}[recipe]
    prefix = str(tmp_path / recipe)
    trained = module.main(['--dataset', dataset, '--dataset-root', root, '--batch-size', '2',
                           '--num-train-images', '4', '--epochs', '1', '--save-prefix', prefix])
    classes = list({'voc': VOCDetection, 'coco': COCODetection}[dataset].CLASSES)
    assert trained['classes'] == classes
    aps = trained['final']['map']
    assert list(aps) == classes + ['mAP']
    # AP where the validation images hold ground truth, None for every other class
    assert {name for name in classes if aps[name] is not None} == set(RENAME.values())
    assert 0 <= aps['mAP'] <= 1
    assert all(np.isfinite(v).all() for v in trained['loss_curve'].values())
    result = evaluate.main([prefix])                            # the run's own dataset flags
    assert result['map'] == aps and result['images'] == IMAGES
    if dataset == 'coco':                                       # COCO's metric too, same again
        assert list(trained['final']['coco']) == list(coco_eval.STATS)
        assert all(v is None or 0 <= v <= 1 for v in trained['final']['coco'].values())
        assert trained['epochs'][-1]['coco'] == trained['final']['coco'] == result['coco']
    else:
        assert 'coco' not in trained['final'] and 'coco' not in result
    drawn = show_samples.main(['--run', prefix, '--images', '0', '--output', prefix + '-s'])
    assert list(drawn['images']) == [0] and os.path.getsize(prefix + '-s.png') > 0


def test_a_voc_format_dataset_of_your_own_classes_and_splits(voc_root, tmp_path):
    # the synthetic dataset is VOC-format data with its own classes and split names;
    # naming two of its three classes trains on those and skips the third's objects
    prefix = str(tmp_path / 'own')
    trained = train_faster_rcnn.main([
        '--dataset', 'voc', '--dataset-root', voc_root, '--classes', 'triangle', 'disc',
        '--train-splits', '2007:train', '--val-splits', '2007:val', '--num-train-images', '4',
        '--num-val-images', '8', '--epochs', '1', '--save-prefix', prefix])
    assert trained['classes'] == ['triangle', 'disc']
    assert list(trained['final']['map']) == ['triangle', 'disc', 'mAP']
    assert evaluate.main([prefix])['map'] == trained['final']['map']
    train, val, _ = loaders.build_datasets(train_faster_rcnn.parse_args(
        ['--dataset', 'voc', '--dataset-root', voc_root, '--classes', 'triangle', 'disc',
         '--train-splits', '2007:train', '--val-splits', '2007:val']))
    full, _, _ = _datasets('synthetic', voc_root)
    assert len(train) == len(full) and len(val) == 100
    ours = np.concatenate([train[i][1] for i in range(20)])
    theirs = np.concatenate([full[i][1] for i in range(20)])
    # square (synthetic class 1) is gone; triangle (2) is now 0, disc (0) now 1
    assert sorted(ours[:, 4].tolist()) == sorted({2: 0, 0: 1}[int(c)] for c in theirs[:, 4]
                                                 if c != 1)


def test_classes_naming_no_object_are_refused_before_training(voc_root, tmp_path):
    # a misspelled class would otherwise train on images whose objects are all skipped
    with pytest.raises(SystemExit, match=r"the 300 images of 2007:train hold no object of "
                                         r"the run's classes \(disk\)"):
        train_faster_rcnn.main(['--dataset', 'voc', '--dataset-root', voc_root,
                                '--classes', 'disk', '--train-splits', '2007:train',
                                '--val-splits', '2007:val', '--save-prefix',
                                str(tmp_path / 'run')])


@pytest.mark.parametrize('flags, message', [
    (['--classes', 'a', 'b'], '--classes need --dataset voc'),
    (['--dataset', 'voc', '--classes', 'a', 'a'], '--classes must be distinct'),
    (['--dataset', 'voc', '--classes', 'Dog'], '--classes must be distinct names'),
    (['--dataset', 'voc', '--train-splits', '2007'], "'2007' is not YEAR:NAME"),
    (['--dataset', 'voc', '--val-splits', '07:test'], "'07:test' is not YEAR:NAME"),
    (['--val-splits', '2007:test'], '--val-splits need --dataset voc')])
def test_voc_flags_are_checked(flags, message, capsys):
    with pytest.raises(SystemExit):
        train_ssd.parse_args(flags)
    assert message in capsys.readouterr().err


def test_missing_layouts_exit_naming_what_is_missing(tmp_path, monkeypatch, vocdevkit):
    with pytest.raises(SystemExit, match='VOC2012.*trainval.txt'):
        _datasets('voc', str(tmp_path))
    # a real devkit read as the synthetic set (no --dataset voc): said so, left alone
    with pytest.raises(SystemExit, match='holds another dataset.*--dataset voc'):
        _datasets('synthetic', vocdevkit)
    (tmp_path / 'val2017').mkdir()
    with pytest.raises(SystemExit, match=r'COCO 2017 .*missing: \S*instances_train2017.json, '
                                         r'\S*train2017, \S*instances_val2017.json$'):
        _datasets('coco', str(tmp_path))        # was GluonCV's OSError from deep inside
    monkeypatch.setitem(sys.modules, 'pycocotools', None)       # as if it were not installed
    with pytest.raises(SystemExit, match='pip install'):
        _datasets('coco', str(tmp_path))


# ----------------------------------------------------------------------------- COCO's metric

def ground_truth(root):
    """Per validation image [(class, x1, y1, x2, y2)] as GluonCV's COCODetection reads them:
    what a perfect detector would output."""
    val = COCODetection(root, splits='instances_val2017', skip_empty=False)
    return [[(int(c), x1, y1, x2, y2) for x1, y1, x2, y2, c in val[i][1] if c >= 0]
            for i in range(len(val))]


def feed(metric, detections, pad=3):
    """Give ``metric`` one image a batch: ``detections`` per image as (label, x1, y1, x2, y2)
    or (label, score, x1, y1, x2, y2) (score 0.9 when not given), then ``pad`` rows of -1."""
    for rows in detections:
        rows = [row if len(row) == 6 else (row[0], 0.9) + tuple(row[1:]) for row in rows]
        rows += [(-1, -1, 0, 0, 0, 0)] * pad
        array = mx.nd.array(rows).expand_dims(0)                # (1, K, 6)
        metric.update(array[:, :, 2:], array[:, :, :1], array[:, :, 1:2])


def annotation(root):
    return os.path.join(root, 'annotations', 'instances_val2017.json')


def test_coco_metric_scores_perfect_detections_one(coco):
    truth = ground_truth(coco)
    metric = coco_eval.COCOMetric(annotation(coco))
    feed(metric, truth)
    stats = metric.get()
    assert list(stats) == list(coco_eval.STATS)
    assert stats['AP'] == stats['AP50'] == stats['AP75'] == 1.0
    assert all(v in (1.0, None) for v in stats.values())


def test_coco_metric_averages_over_iou_thresholds(coco):
    # every box shifted right by a fifth of its width (x2 - x1 + 1): IoU 2/3 with its object
    shifted = [[(c, x1 + (x2 - x1 + 1) / 5, y1, x2 + (x2 - x1 + 1) / 5, y2)
                for c, x1, y1, x2, y2 in rows] for rows in ground_truth(coco)]
    metric = coco_eval.COCOMetric(annotation(coco))
    feed(metric, shifted)
    stats = metric.get()
    assert stats['AP50'] == 1.0 and stats['AP75'] == 0.0
    assert stats['AP'] == pytest.approx(0.4)                    # 0.5, 0.55, 0.6, 0.65 of 10


def test_coco_metric_counts_only_the_images_evaluated(coco):
    truth = ground_truth(coco)
    metric = coco_eval.COCOMetric(annotation(coco), num_images=3)
    feed(metric, truth[:3])
    assert metric.get()['AP'] == 1.0                            # not 3 images' worth of misses
    with pytest.raises(ValueError, match='more images than the 3'):
        feed(metric, truth[3:4])
    whole = coco_eval.COCOMetric(annotation(coco))
    feed(whole, truth[:3])
    assert whole.get()['AP'] == 1.0                             # the images seen so far
    whole.reset()
    assert whole.get() == dict.fromkeys(coco_eval.STATS)


def test_coco_metric_without_detections_or_with_wrong_classes_is_zero(coco):
    truth = ground_truth(coco)
    empty = coco_eval.COCOMetric(annotation(coco))
    feed(empty, [[] for _ in truth])
    wrong = coco_eval.COCOMetric(annotation(coco))
    feed(wrong, [[((c + 1) % 80, x1, y1, x2, y2) for c, x1, y1, x2, y2 in rows]
                 for rows in truth])
    for stats in (empty.get(), wrong.get()):
        assert stats['AP'] == stats['AP50'] == 0.0
        assert all(v in (0.0, None) for v in stats.values())


@pytest.mark.filterwarnings('ignore:Mean of empty slice', 'ignore:invalid value encountered')
def test_coco_metric_equals_gluoncvs_coco_detection_metric(coco, tmp_path):
    """The same detections (scores >= 0.05, which GluonCV's keeps) give the same summaries."""
    from gluoncv.utils.metrics.coco_detection import COCODetectionMetric
    rng = np.random.RandomState(0)
    detections = []
    for rows in ground_truth(coco):                             # jittered hits, false alarms
        hits = [(c, rng.uniform(0.05, 1), x1 + rng.uniform(-4, 4), y1 + rng.uniform(-4, 4),
                 x2 + rng.uniform(-4, 4), y2 + rng.uniform(-4, 4)) for c, x1, y1, x2, y2 in rows]
        alarms = [(rng.randint(3), rng.uniform(0.05, 1), x, y, x + 30, y + 20)
                  for x, y in rng.uniform(0, 120, (3, 2))]
        detections.append(hits + alarms)
    ours = coco_eval.COCOMetric(annotation(coco))
    val = COCODetection(coco, splits='instances_val2017', skip_empty=False)
    theirs = COCODetectionMetric(val, str(tmp_path / 'gluoncv'), use_time=False, cleanup=True)
    for metric in (ours, theirs):
        feed(metric, detections)
    stats = ours.get()
    theirs.get()
    want = theirs._coco_eval.stats[:6]                          # pylint: disable=protected-access
    assert [-1 if v is None else v for v in stats.values()] == pytest.approx(want.tolist())
    assert 0 < stats['AP'] < stats['AP50'] < 1


class PerfectDetector(object):
    """Stands in for a detector in ``evaluation.evaluate``: returns each image's own labels
    (given in loader order) as ``(ids, scores, boxes)`` at the network's input size."""

    def __init__(self, loader):
        self._labels = [y for _, labels, _ in loader for y in labels]

    def hybridize(self):
        pass

    def __call__(self, image):
        label = self._labels.pop(0)
        return label[:, :, 4:5], mx.nd.ones_like(label[:, :, 4:5]), label[:, :, :4]


@pytest.mark.parametrize('recipe', ['faster_rcnn', 'ssd'])
def test_evaluation_maps_boxes_back_to_the_original_pixels(coco, recipe):
    # each recipe's validation transform resizes differently (SSD: to a square, each axis
    # by its own factor); its scale must bring detections back to the annotation's pixels
    from gluoncv.data.transforms.presets.rcnn import FasterRCNNDefaultValTransform
    transform = {'faster_rcnn': FasterRCNNDefaultValTransform(96, 160),
                 'ssd': train_ssd.ValTransform(128)}[recipe]
    val = COCODetection(coco, splits='instances_val2017', skip_empty=False)
    loader = loaders.val_loader(val, transform, 1, 0)
    result = evaluation.evaluate(PerfectDetector(loader), loader, [mx.cpu()], list(val.classes),
                             coco_eval.COCOMetric(annotation(coco)))
    assert result['map']['mAP'] == pytest.approx(1.0)
    assert result['coco']['AP'] == 1.0 and all(v in (1.0, None) for v in result['coco'].values())


def test_coco_metric_numbers_categories_in_file_order(coco, tmp_path):
    # category ids need not increase along the file (GluonCV's COCODetection numbers
    # classes by file order); permute the ids, keep names and order
    with open(annotation(coco)) as f:
        data = json.load(f)
    new_id = {c['id']: 100 - c['id'] for c in data['categories']}
    for record in data['categories'] + data['annotations']:
        key = 'id' if 'name' in record else 'category_id'
        record[key] = new_id[record[key]]
    path = str(tmp_path / 'instances_val2017.json')
    with open(path, 'w') as f:
        json.dump(data, f)
    metric = coco_eval.COCOMetric(path)
    feed(metric, ground_truth(coco))                            # class c: the c-th category
    assert metric.get()['AP'] == 1.0
