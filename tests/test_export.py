"""recipes/export.py: every block exported, then reloaded by a fresh process with MXNet only."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

RECIPES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'recipes')
sys.path.insert(0, RECIPES)

import export  # noqa: E402  pylint: disable=wrong-import-position
import train_faster_rcnn  # noqa: E402  pylint: disable=wrong-import-position
import train_ssd  # noqa: E402  pylint: disable=wrong-import-position

SELECTION_BLOCKS = {'rpn_target_sampler', 'rpn_target_generator', 'quota_sampler',
                    'rcnn_target_sampler', 'hard_example_miner', 'hard_negative_miner',
                    'ohem_sampler', 'multibox_loss', 'rcnn_hard_example_loss'}
RANDOM_BLOCKS = {'rpn_target_sampler', 'rpn_target_generator', 'quota_sampler',
                 'rcnn_target_sampler'}


def check_in_fresh_process(folder):
    """``export.py --check folder`` in a new interpreter: (return code, stdout + stderr)."""
    done = subprocess.run([sys.executable, os.path.join(RECIPES, 'export.py'), '--check',
                           str(folder)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300)
    return done.returncode, done.stdout


@pytest.fixture(scope='module')
def exported(tmp_path_factory, voc_root):
    """The recipes' tiny detectors trained for one iteration (SSD; Faster R-CNN with random
    and with OHEM RCNN sampling), exported with every block."""
    root = tmp_path_factory.mktemp('export')
    tiny = ['--dataset-root', voc_root, '--num-train-images', '4', '--num-val-images', '1',
            '--batch-size', '2', '--max-iters', '1', '--epochs', '1']
    train_ssd.main(tiny + ['--save-prefix', str(root / 'ssd')])
    train_faster_rcnn.main(tiny + ['--save-prefix', str(root / 'frcnn')])
    # OHEM never runs GluonCV's RCNN target generator: its params lack that one's constants
    train_faster_rcnn.main(tiny + ['--save-prefix', str(root / 'frcnn_ohem'),
                                   '--rcnn-sampler', 'ohem'])
    folder = root / 'out'
    # a run named by its prefix, its params file or its metrics JSON
    manifest = export.main(['--params'] + [str(root / run) for run in (
        'ssd', 'frcnn.params', 'frcnn_ohem.json')] + ['--output', str(folder), '--seed', '3'])
    return folder, manifest


def test_manifest_lists_every_block_with_mxnet_input_names(exported):
    folder, manifest = exported
    with open(str(folder / 'manifest.json')) as f:
        assert json.load(f) == manifest
    entries = {e['name']: e for e in manifest['blocks']}
    # two of a kind are numbered in the order given, each with its params file
    assert set(entries) == SELECTION_BLOCKS | {'ssd', 'faster_rcnn-1', 'faster_rcnn-2'}
    assert [os.path.basename(entries[name]['source'])
            for name in ('ssd', 'faster_rcnn-1', 'faster_rcnn-2')] == [
                'ssd.params', 'frcnn.params', 'frcnn_ohem.params']
    assert all(entries[name]['source'] is None for name in SELECTION_BLOCKS)
    assert {name for name, e in entries.items() if e['random']} == RANDOM_BLOCKS
    # MXNet names one input 'data', several 'data0', 'data1', ...; the argument names follow
    assert [x['name'] for x in entries['ohem_sampler']['inputs']] == ['data0', 'data1', 'data2']
    assert [x['argument'] for x in entries['ohem_sampler']['inputs']] == ['x', 'logits', 'ious']
    assert entries['rpn_target_sampler']['inputs'] == [
        {'name': 'data', 'argument': 'ious', 'shape': [2, 64, 3], 'dtype': 'float32'}]
    assert entries['ssd']['inputs'][0]['shape'] == [1, 3, 128, 128]
    assert entries['ssd']['class'] == 'gluoncv.model_zoo.ssd.ssd.SSD'
    for entry in manifest['blocks']:
        for key in ('symbol', 'check') + (('params',) if entry['params'] else ()):
            assert os.path.getsize(str(folder / entry[key])) > 0
        with open(str(folder / entry['symbol'])) as f:
            ops = {node['op'] for node in json.load(f)['nodes']}
        assert 'Custom' not in ops                                  # no Python operator inside


@pytest.mark.parametrize('detector, trained', [
    ('ssd', 'ssd'), ('faster_rcnn-1', 'frcnn'), ('faster_rcnn-2', 'frcnn_ohem')])
def test_exported_detectors_hold_the_trained_parameters(exported, detector, trained):
    import mxnet as mx
    folder, _ = exported
    saved = mx.nd.load(str(folder / '{}-0000.params'.format(detector)))
    # export names each parameter 'arg:' or 'aux:' + its full name, the training recipe
    # its structural name; every exported value is a trained one (the training-only
    # constants of GluonCV's RCNN target generator are not in the prediction graph)
    trained = {(v.shape, round(float(v.abs().sum().asscalar()), 3))
               for v in mx.nd.load(str(folder.parent / (trained + '.params'))).values()}
    assert {(v.shape, round(float(v.abs().sum().asscalar()), 3))
            for v in saved.values()} <= trained
    assert len(saved) > 20


def test_fresh_detectors_export_and_reload(tmp_path):
    manifest = export.main(['--fresh', 'ssd', 'faster_rcnn', '--output', str(tmp_path)])
    assert [(e['name'], e['source']) for e in manifest['blocks']][-2:] == [
        ('ssd', 'fresh'), ('faster_rcnn', 'fresh')]
    code, out = check_in_fresh_process(tmp_path)
    assert code == 0, out


def test_fresh_process_reloads_every_block_with_mxnet_only(exported):
    folder, manifest = exported
    code, out = check_in_fresh_process(folder)
    assert code == 0, out
    for entry in manifest['blocks']:
        assert '{} '.format(entry['name']) in out and 'ok' in out
    assert '{} blocks reloaded with MXNet only: same outputs'.format(len(manifest['blocks'])) \
        in out                                  # printed after asserting gluonmine not imported


def test_check_fails_on_a_changed_output(exported, tmp_path):
    folder, manifest = exported
    # copy the folder, flip one selection in the saved outputs: the check must notice
    import shutil
    copy = tmp_path / 'copy'
    shutil.copytree(str(folder), str(copy))
    data = dict(np.load(str(copy / 'hard_negative_miner-check.npz')))
    data['output0'] = data['output0'].copy()
    data['output0'][0, np.argmax(data['output0'][0] == 0)] = -1
    np.savez(str(copy / 'hard_negative_miner-check.npz'), **data)
    code, out = check_in_fresh_process(copy)
    assert code != 0 and 'hard_negative_miner output 0' in out


def test_check_of_a_folder_without_a_manifest_exits_clearly(tmp_path):
    code, out = check_in_fresh_process(tmp_path)
    # a line of its own: MXNet may log more (MXNET_ENGINE_TYPE=NaiveEngine says so at exit)
    assert code == 1 and 'Traceback' not in out
    assert '--check {}: no manifest.json there (export.py --output FOLDER writes one)'.format(
        tmp_path) in out.splitlines()


def test_check_fails_with_another_seed_for_random_blocks(exported, tmp_path):
    folder, _ = exported
    import shutil
    copy = tmp_path / 'seed'
    shutil.copytree(str(folder), str(copy))
    with open(str(copy / 'manifest.json')) as f:
        manifest = json.load(f)
    manifest['seed'] += 1
    manifest['blocks'] = [e for e in manifest['blocks'] if e['name'] == 'rpn_target_sampler']
    with open(str(copy / 'manifest.json'), 'w') as f:
        json.dump(manifest, f)
    code, out = check_in_fresh_process(copy)
    assert code != 0 and 'rpn_target_sampler output 0' in out


def test_params_without_their_metrics_exit_clearly(tmp_path):
    (tmp_path / 'net.params').write_bytes(b'')
    with pytest.raises(SystemExit, match='metrics JSON'):
        export.main(['--params', str(tmp_path / 'net.params'), '--output', str(tmp_path / 'o')])
    with pytest.raises(SystemExit, match='no .*missing.params'):
        export.main(['--params', str(tmp_path / 'missing'), '--output', str(tmp_path / 'o')])
    # an evaluation's JSON names a recipe, but is no run's
    (tmp_path / 'run-eval.params').write_bytes(b'')
    (tmp_path / 'run-eval.json').write_text('{"recipe": "train_faster_rcnn", "map": {}}')
    with pytest.raises(SystemExit, match='was not written by train_faster_rcnn.py'):
        export.main(['--params', str(tmp_path / 'run-eval.json'), '--output',
                     str(tmp_path / 'o')])
    # flags and classes, but another recipe's; a training recipe's name without its flags
    (tmp_path / 'other.params').write_bytes(b'')
    for metrics in ({'recipe': 'evaluate', 'classes': ['a'], 'args': {}},
                    {'recipe': 'train_ssd', 'classes': ['a']}):
        (tmp_path / 'other.json').write_text(json.dumps(metrics))
        with pytest.raises(SystemExit, match='was not written by train_faster_rcnn.py'):
            export.main(['--params', str(tmp_path / 'other'), '--output', str(tmp_path / 'o')])


def test_a_run_older_than_a_flag_takes_its_default(exported, tmp_path):
    folder, _ = exported
    run = str(folder.parent / 'frcnn')
    with open(run + '.json') as f:
        metrics = json.load(f)
    del metrics['args']['network']
    with open(str(tmp_path / 'old.json'), 'w') as f:
        json.dump(metrics, f)
    (tmp_path / 'old.params').write_bytes((folder.parent / 'frcnn.params').read_bytes())
    old, new = export.load_detector(str(tmp_path / 'old'), 3), export.load_detector(run, 3)
    assert old[::2] == new[::2] == ('faster_rcnn', (1, 3, 128, 160))   # detector, image shape
    assert ([p.data().shape for p in old[1].collect_params().values()]
            == [p.data().shape for p in new[1].collect_params().values()])


def test_manifest_records_the_settings_outputs_and_example_inputs(exported):
    folder, manifest = exported
    assert (manifest['format'], manifest['seed']) == (1, 3)
    entries = {e['name']: e for e in manifest['blocks']}
    # a block's repr, unless it is long (a detector's): then its class name
    assert entries['rpn_target_sampler']['settings'].startswith(
        'RPNTargetSampler(num_sample=32, max_pos=16,')
    assert entries['ssd']['settings'] == 'SSD'
    assert entries['rpn_target_sampler']['outputs'] == [{'shape': [2, 64], 'dtype': 'float32'}] * 2
    # the second image's last ground truth is a padding row
    gt = np.load(str(folder / 'rpn_target_generator-check.npz'))['input0']
    assert gt.shape == (2, 3, 4) and (gt[1, 2] == -1).all() and (gt[:, :2] >= 0).all()
    assert (gt[0, 2] >= 0).all()


def test_check_fails_when_an_output_is_missing(exported):
    folder, manifest = exported
    entry = dict(next(e for e in manifest['blocks'] if e['name'] == 'hard_negative_miner'))
    entry['outputs'] = entry['outputs'] * 2                 # the manifest promises two
    with pytest.raises(AssertionError, match='hard_negative_miner: 1 outputs, exported 2'):
        export.check_block(str(folder), entry, manifest['seed'])


def test_fresh_weights_follow_the_seed():
    import mxnet as mx
    scores = []
    for _ in range(2):
        net, shape = export.build_detector('ssd', ['a', 'b'], 5)
        scores.append(net(mx.nd.ones(shape))[1].asnumpy())     # initialised on first use
    np.testing.assert_array_equal(scores[0], scores[1])


def test_a_runs_flags_choose_its_network():
    from gluonmine.data import CLASSES
    run = {'args': {'network': 'tiny_fpn'}, 'classes': list(CLASSES)}
    net, shape = export.build_detector('faster_rcnn', list(CLASSES), 0, run)
    fpn = train_faster_rcnn.TINY_NETWORKS['tiny_fpn'](list(CLASSES))
    assert shape == (1, 3, 128, 160)
    assert ([p.shape for p in net.collect_params().values()]
            == [p.shape for p in fpn.collect_params().values()])
