"""The READMEs stay true: every Python example in README.md and recipes/README.md runs, on
inputs of the shapes its comments give, and returns what its comments say.

Each example runs in a namespace of its own: the placeholders it names (``ious``,
``net``, ``data``, ...) and nothing else, so an example that forgets an import or
names a variable it never explains fails here."""
import os
import pathlib
import re
import shutil
import sys
import types

import mxnet as mx
import numpy as np
import pytest
from mxnet import nd

from conftest import random_boxes
from test_rcnn import GT_BOXES, GT_LABELS, IM_HW
from test_rcnn_ohem import images, tiny_net
from test_transforms import IMAGE, LABEL, POLYGONS

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'recipes'))

import export  # noqa: E402  pylint: disable=wrong-import-position

EXAMPLES = [example for document in ('README.md', 'recipes/README.md')
            for example in re.findall(r'```python\n(.*?)```', (ROOT / document).read_text(), re.S)]
B, N, M, C = 2, 60, 4, 3


def detection_arrays():
    """Placeholders of the sampler and miner examples: B images, N candidates, M ground
    truths, C classes and background."""
    rng = np.random.RandomState(0)
    ious = (rng.rand(B, N, M) ** 2).astype('float32')
    # GluonCV's SSD matcher output (-1: unmatched), what OHEMSampler takes
    anchor_matches = np.where(ious.max(-1) >= 0.5, ious.argmax(-1), -1).astype('float32')
    return {name: nd.array(value) for name, value in dict(
        ious=ious, anchor_matches=anchor_matches,
        cls_pred=rng.randn(B, N, C + 1), cls_preds=rng.randn(B, N, C + 1),
        gt_boxes=np.stack([random_boxes(rng, M) for _ in range(B)]),
        anchors=random_boxes(rng, N), im_hw=np.float32([[90, 100]] * B),
        cls_losses=rng.rand(B, N), loc_losses=rng.rand(B, N),
        rois=np.stack([random_boxes(rng, N) for _ in range(B)]),
        samples=rng.choice([-1., 0., 1.], (B, N)), labels=rng.randint(0, C + 1, (B, N)),
    ).items()}


def proposals():
    """The RCNNTargetSampler example: 2 images of 2000 scored proposals."""
    rng = np.random.RandomState(0)
    return dict(net=tiny_net(), gt_boxes=GT_BOXES,
                rois=nd.array(np.stack([random_boxes(rng, 2000) for _ in range(2)])),
                scores=nd.array(rng.rand(2, 2000, 1)))


def gluoncv_script():
    """What GluonCV's train_faster_rcnn.py has around the two lines: its get_dataloader
    builds the transform class it is given, as the script does."""
    def get_dataloader(net, train_dataset, val_dataset, train_transform, val_transform,
                       batch_size, num_shards, args):
        return train_transform(net.short, net.max_size, net, ashape=net.ashape,
                               multi_stage=args.use_fpn), None
    return dict(net=tiny_net(), get_dataloader=get_dataloader, train_dataset=None,
                val_dataset=None, FasterRCNNDefaultValTransform=None, batch_size=2,
                ctx=[mx.cpu()], args=types.SimpleNamespace(use_fpn=False))


def training_batch():
    """A batch of the training loop: the net, images, padded boxes and labels."""
    label = nd.concat(GT_BOXES, GT_LABELS, dim=-1)
    return dict(net=tiny_net(), data=images(), gt_box=GT_BOXES, gt_label=GT_LABELS,
                label=label, im_hw=IM_HW.astype('int32'))


def mask_image():
    """A Mask R-CNN and one training image: its boxes with labels, one polygon an object."""
    from gluonmine.models import tiny_mask_rcnn    # pylint: disable=import-outside-toplevel
    net = tiny_mask_rcnn(['a', 'b'])
    net.initialize()
    return dict(mask_net=net, image=IMAGE, label=LABEL, polygons=POLYGONS)


def check_masks(namespace):
    img, masks = namespace['img'], namespace['masks']
    assert masks.shape == (2,) + img.shape[1:]            # one mask an object, image-sized
    assert (namespace['cls_targets'][0] == 1).any()


def ssd_lists():
    """The SSD loss example: one device's predictions and targets, in lists."""
    rng = np.random.RandomState(1)
    arrays = detection_arrays()
    cls_targets = nd.array(rng.randint(0, C + 1, (B, N)))
    return dict(cls_preds=[arrays['cls_pred']], box_preds=[nd.array(rng.randn(B, N, 4))],
                cls_targets=[cls_targets], box_targets=[nd.array(rng.randn(B, N, 4))])


def shapes(**expected):
    """A check that each named result has the given shape."""
    def check(namespace):
        for name, shape in expected.items():
            assert namespace[name].shape == shape, name
    return check


def no_check(namespace):
    """Running is the check."""
    del namespace


def no_placeholders():
    """An example that names nothing it does not make."""
    return {}


def check_pyramid_net(namespace):
    net = namespace['net']
    assert net.num_stages == 5 and net.classes == ['disc', 'square', 'triangle']
    rpn_conv = [p for name, p in net.collect_params().items()
                if name.endswith('rpnhead0_conv0_weight')]
    assert [p.shape[0] for p in rpn_conv] == [16]                 # the RPN's channels


def datasets(tmp_path, voc_root):
    """The data example runs in a fresh directory, with a home holding two VOC-format
    datasets made of the synthetic images."""
    os.makedirs(tmp_path / 'data')
    os.symlink(voc_root, tmp_path / 'data' / 'synthetic_voc')
    for folder, year, split in [('VOCdevkit', 2007, 'test'), ('my_data', 2018, 'train')]:
        target = tmp_path / 'home' / folder / 'VOC{}'.format(year)
        os.makedirs(target / 'ImageSets' / 'Main')
        for sub in ('Annotations', 'JPEGImages'):
            os.symlink(os.path.join(voc_root, 'VOC2007', sub), target / sub)
        shutil.copy(os.path.join(voc_root, 'VOC2007', 'ImageSets', 'Main', 'val.txt'),
                    target / 'ImageSets' / 'Main' / '{}.txt'.format(split))
    return {}


def exported_blocks(tmp_path, voc_root):
    """The export example runs where ``recipes/export.py`` has written runs/export."""
    del voc_root
    export.main(['--output', str(tmp_path / 'runs' / 'export')])
    return {'ious': detection_arrays()['ious']}


def check_datasets(namespace):
    assert len(namespace['train']) == 300 and len(namespace['voc']) == 100
    assert namespace['own'].classes == ('person', 'dog')


def check_one_image(namespace):
    image, label = namespace['image'], namespace['label']
    assert image.dtype == np.uint8 and image.shape[2] == 3 and label.shape[1] == 6


def check_device_targets(namespace):
    for name in ('rpn_cls_targets', 'rpn_box_targets', 'rpn_box_masks'):
        assert namespace[name].shape[:2] == namespace['rpn_score'].shape[:2], name


# a line of the example: (its placeholders, a check of what it made)
SETUPS = [
    ("cls_pred16 = cls_pred.astype('float16')", detection_arrays, shapes(samples=(B, N))),
    ('sampler = RPNTargetSampler(', detection_arrays,
     shapes(samples=(B, N), matches=(B, N), cls_target=(B, N), box_target=(B, N, 4))),
    ('sampler = QuotaSampler(', detection_arrays, shapes(samples=(B, N), matches=(B, N))),
    ('net.sampler = RCNNTargetSampler(', proposals,
     shapes(rois=(2, 512, 4), samples=(2, 512), matches=(2, 512))),
    ('net.sampler = rcnn_sampler_for(net)', gluoncv_script, no_check),
    ('train_transform = install_samplers(net)', training_batch, no_check),
    ('rpn_targets = install_samplers(net, device_targets=True)', training_batch,
     check_device_targets),
    ('train_transform = install_samplers(mask_net)', mask_image, check_masks),
    ('miner = HardExampleMiner(', detection_arrays,
     shapes(indices=(B, 128), mask=(B, N), samples=(B, N))),
    ('mbox_loss = SSDMultiBoxLoss(', ssd_lists, no_check),
    ('ohem = OHEMFasterRCNN(net)', training_batch, no_check),
    ('RCNNHardExampleLoss()(', training_batch, shapes(loss=(2,), mask=(2, 128))),
    ('sampler=RPNTargetSampler())', training_batch, no_check),
    ('net = tiny_faster_rcnn_fpn(', no_placeholders, check_pyramid_net),
    ("own = VOCFormatDetection('~/my_data'", datasets, check_datasets),
    ('image, label = train[0]', datasets, check_one_image),
    ("manifest = json.load(f)", exported_blocks, shapes(samples=(B, N), matches=(B, N))),
]


def setup_of(example):
    found = [setup for setup in SETUPS if setup[0] in example]
    assert len(found) == 1, 'README example without exactly one setup here:\n' + example
    return found[0]


def test_every_setup_has_its_example():
    for line, _, _ in SETUPS:
        assert sum(line in example for example in EXAMPLES) == 1, line


def example_id(example):
    return next((line for line, _, _ in SETUPS if line in example), 'no setup')


@pytest.mark.parametrize('example', EXAMPLES, ids=[example_id(e) for e in EXAMPLES])
def test_example_runs(example, tmp_path, monkeypatch, request):
    _, make, check = setup_of(example)
    if make in (datasets, exported_blocks):
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv('HOME', str(tmp_path / 'home'))
        namespace = make(tmp_path, request.getfixturevalue('voc_root'))
    else:
        namespace = make()
    exec(compile(example, 'README example', 'exec'), namespace)  # pylint: disable=exec-used
    mx.nd.waitall()
    check(namespace)
