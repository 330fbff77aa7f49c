"""Checkpoints and ``--resume`` of the training recipes.

A run interrupted in epoch 2 continues from the checkpoint written after epoch
1 with the same weights, momentum, update count and learning rate, the same
data order and the metrics gathered so far; a finished run resumes to nothing;
a changed flag or a missing checkpoint is refused clearly.
"""
import json
import os
import pickle
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'recipes'))

import checkpoint  # noqa: E402  pylint: disable=wrong-import-position
import loaders  # noqa: E402  pylint: disable=wrong-import-position
import train_faster_rcnn  # noqa: E402  pylint: disable=wrong-import-position
import train_ssd  # noqa: E402  pylint: disable=wrong-import-position
import training  # noqa: E402  pylint: disable=wrong-import-position

# two epochs of two iterations each
RECIPES = {'faster_rcnn': (train_faster_rcnn, ['--num-train-images', '4', '--batch-size', '2']),
           'ssd': (train_ssd, ['--num-train-images', '8', '--batch-size', '4'])}


def run(recipe, voc_root, prefix, *flags):
    module, size = RECIPES[recipe]
    return module.main(size + ['--dataset-root', voc_root, '--num-val-images', '2',
                               '--epochs', '2', '--save-prefix', str(prefix)] + list(flags))


def snapshot(net, trainer):
    """What training continues from: parameters, momentum, update count, learning rate."""
    params = {name: p.data().asnumpy()
              for name, p in net._collect_params_with_prefix().items()}  # pylint: disable=protected-access
    states = trainer._updaters[0].states                         # pylint: disable=protected-access
    momentum = {i: s.asnumpy() for i, s in states.items() if s is not None}
    return params, momentum, trainer.optimizer.num_update, trainer.learning_rate


def assert_same_snapshot(saved, resumed):
    """Equal snapshots: parameters (GluonCV's FasterRCNN's ``_target_generator``, which the
    net makes on first use, included: the recipe makes it before training), momentum,
    update count and learning rate."""
    for a, b in zip(saved[:2], resumed[:2]):
        assert set(a) == set(b)
        for name in b:
            assert_array_equal(a[name], b[name], err_msg=str(name))
    assert saved[2:] == resumed[2:]


@pytest.fixture
def spy(monkeypatch):
    """Records the draws read (SeededDraws), snapshots at each save and after a resume, and
    interrupts epoch ``spy['interrupt']`` when set."""
    record = {'draws': [], 'saved': {}, 'resumed': None, 'interrupt': None}
    get, save, resume, epoch_fn = (loaders.SeededDraws.__getitem__, training.Run.save,
                                   training.Run.resume, training.train_epoch)

    def getitem(self, draw):
        record['draws'].append(int(draw))
        return get(self, draw)

    def saving(self, net, trainer, epoch, finished):
        record['saved'][epoch] = snapshot(net, trainer)
        return save(self, net, trainer, epoch, finished)

    def resuming(self, net, trainer, new_stats):
        first = resume(self, net, trainer, new_stats)
        record['resumed'] = snapshot(net, trainer)
        return first

    def train_epoch(step, loader, stats, log, args, epoch, max_iters):
        if epoch == record['interrupt']:
            raise KeyboardInterrupt
        return epoch_fn(step, loader, stats, log, args, epoch, max_iters)

    monkeypatch.setattr(loaders.SeededDraws, '__getitem__', getitem)
    monkeypatch.setattr(training.Run, 'save', saving)
    monkeypatch.setattr(training.Run, 'resume', resuming)
    monkeypatch.setattr(training, 'train_epoch', train_epoch)
    return record


@pytest.mark.parametrize('recipe', sorted(RECIPES))
def test_an_interrupted_run_continues_from_its_checkpoint(voc_root, tmp_path, spy, recipe):
    whole = run(recipe, voc_root, tmp_path / 'whole')
    whole_draws, spy['draws'] = spy['draws'], []
    prefix = tmp_path / 'cut'
    spy['interrupt'] = 2
    with pytest.raises(KeyboardInterrupt):
        run(recipe, voc_root, prefix)
    # what an interrupted run leaves: its checkpoint, parameters, metrics and plot so far
    with open('{}.json'.format(prefix)) as f:
        so_far = json.load(f)
    assert [e['epoch'] for e in so_far['epochs']] == [1] and 'final' not in so_far
    for ext in ('ckpt', 'params', 'png'):
        assert os.path.getsize('{}.{}'.format(prefix, ext)) > 0
    cut_draws, spy['draws'], spy['interrupt'] = spy['draws'], [], None

    resumed = run(recipe, voc_root, prefix, '--resume')
    # training went on from exactly what epoch 1 saved, over epoch 2's images in order
    assert spy['resumed'][2] == 2 and spy['resumed'][1]    # updates so far; momentum
    assert_same_snapshot(spy['saved'][1], spy['resumed'])
    assert cut_draws == whole_draws[:len(cut_draws)]
    assert spy['draws'] == whole_draws[len(cut_draws):]
    # the report holds both epochs: the first as saved, the second new
    assert [e['epoch'] for e in resumed['epochs']] == [1, 2]
    assert resumed['epochs'][0] == so_far['epochs'][0]
    assert resumed['epochs'][0]['losses'] == whole['epochs'][0]['losses']
    for name, values in resumed['loss_curve'].items():
        assert len(values) == 4 and values[:2] == whole['loss_curve'][name][:2]
        assert np.isfinite(values).all()
    final = resumed['final']
    assert final['iterations'] == 4 and resumed['args']['resume']
    assert ({k: v['images'] for k, v in final['sampler'].items() if v and 'images' in v}
            == {k: v['images'] for k, v in whole['final']['sampler'].items()
                if v and 'images' in v})
    with open('{}.log'.format(prefix)) as f:
        log = f.read()
    assert 'interrupted in epoch 2' in log and 'resumed from' in log and 'done in' in log


def test_a_finished_run_resumes_to_nothing(voc_root, tmp_path, spy):
    first = run('faster_rcnn', voc_root, tmp_path / 'run', '--max-iters', '1')
    spy['interrupt'] = 1                            # no epoch may start
    again = run('faster_rcnn', voc_root, tmp_path / 'run', '--max-iters', '1', '--resume')
    assert again['loss_curve'] == first['loss_curve'] and len(again['epochs']) == 1
    assert again['final']['map'] == first['final']['map']


def test_resume_refuses_changed_flags_and_a_missing_checkpoint(voc_root, tmp_path):
    run('faster_rcnn', voc_root, tmp_path / 'run', '--max-iters', '1')
    with pytest.raises(SystemExit, match=r'--lr 0\.1 \(checkpoint: 0\.02\)'):
        run('faster_rcnn', voc_root, tmp_path / 'run', '--max-iters', '1', '--resume',
            '--lr', '0.1')
    with pytest.raises(SystemExit, match='no checkpoint'):
        run('faster_rcnn', voc_root, tmp_path / 'other', '--resume')
    # a checkpoint written before a flag existed: the run had the flag's default
    with open(str(tmp_path / 'run.ckpt'), 'rb') as f:
        state = pickle.load(f)
    del state['args']['rpn_min_forced_iou']
    with open(str(tmp_path / 'run.ckpt'), 'wb') as f:
        pickle.dump(state, f)
    run('faster_rcnn', voc_root, tmp_path / 'run', '--max-iters', '1', '--resume')
    with pytest.raises(SystemExit, match=r'--rpn-min-forced-iou 0\.2 \(checkpoint: 0\.0\)'):
        run('faster_rcnn', voc_root, tmp_path / 'run', '--max-iters', '1', '--resume',
            '--rpn-min-forced-iou', '0.2')
    # another recipe's checkpoint: by the recipe it names or, naming none, by its flags
    for recipe, extra, message in [('train_ssd', {}, 'the checkpoint is a train_ssd run'),
                                   (None, {'miner': 'ohem'}, 'has flags miner that')]:
        with open(str(tmp_path / 'run.ckpt'), 'wb') as f:
            pickle.dump(dict(state, recipe=recipe, args=dict(state['args'], **extra)), f)
        with pytest.raises(SystemExit, match=message):
            run('faster_rcnn', voc_root, tmp_path / 'run', '--max-iters', '1', '--resume')
    # a refused command leaves the run's log as it was
    with open(str(tmp_path / 'run.log')) as f:
        log = f.read()
    with pytest.raises(SystemExit, match='--gpus 0'):
        run('faster_rcnn', voc_root, tmp_path / 'run', '--max-iters', '1', '--gpus', '0')
    with open(str(tmp_path / 'run.log')) as f:
        assert f.read() == log and 'done in' in log
    with open(str(tmp_path / 'run.ckpt'), 'wb') as f:
        f.write(b'not a checkpoint')
    with pytest.raises(SystemExit, match='cannot read the checkpoint'):
        run('faster_rcnn', voc_root, tmp_path / 'run', '--max-iters', '1', '--resume')


# a dist_sync worker interrupted as the tests above interrupt a run: at the start of epoch 2
INTERRUPTED_WORKER = """
import sys
sys.path.insert(0, {recipes!r})
import train_faster_rcnn
import training
train_epoch = training.train_epoch
def interrupted(step, loader, stats, log, args, epoch, max_iters):
    if epoch == 2:
        raise KeyboardInterrupt
    return train_epoch(step, loader, stats, log, args, epoch, max_iters)
training.train_epoch = interrupted
try:
    train_faster_rcnn.main(sys.argv[1:])
except KeyboardInterrupt:
    pass
"""


def test_dist_sync_workers_resume_from_their_own_checkpoints(voc_root, tmp_path):
    from test_distributed import RECIPE, assert_identical_workers, run_two_workers
    prefix = str(tmp_path / 'run')
    flags = ['--kvstore', 'dist_sync', '--dataset-root', voc_root, '--num-train-images', '8',
             '--num-val-images', '2', '--epochs', '2', '--save-prefix', prefix]
    code = INTERRUPTED_WORKER.format(recipes=os.path.dirname(RECIPE))
    run_two_workers([sys.executable, '-c', code] + flags, tmp_path)
    for rank in (0, 1):
        assert checkpoint.load('{}-worker{}.ckpt'.format(prefix, rank))['epoch'] == 1
    run_two_workers([sys.executable, RECIPE, '--resume'] + flags, tmp_path)
    assert_identical_workers(prefix)
    for rank in (0, 1):
        with open('{}-worker{}.json'.format(prefix, rank)) as f:
            metrics = json.load(f)
        assert [e['epoch'] for e in metrics['epochs']] == [1, 2]
        assert metrics['final']['iterations'] == 4
        with open('{}-worker{}.log'.format(prefix, rank)) as f:
            assert 'optimizer states restarted' in f.read()


# the recipe run as a script, interrupted as by Ctrl-C in its first epoch or while its
# datasets are read
CTRL_C_SCRIPT = """
import runpy, sys
sys.path.insert(0, {recipes!r})
import {module}
def interrupted(*args):
    raise KeyboardInterrupt
setattr({module}, {name!r}, interrupted)
sys.argv = [{recipe!r}] + sys.argv[1:]
runpy.run_path({recipe!r}, run_name='__main__')
"""


@pytest.mark.parametrize('recipe, where, message', [
    ('faster_rcnn', 'training.train_epoch', 'interrupted in epoch 1: nothing saved yet'),
    ('ssd', 'training.train_epoch', 'interrupted in epoch 1: nothing saved yet'),
    ('ssd', 'loaders.build_datasets', 'interrupted before training started')])
def test_ctrl_c_ends_a_recipe_by_sigint_with_a_message_and_no_traceback(
        voc_root, tmp_path, recipe, where, message):
    import signal
    import subprocess
    path = os.path.join(os.path.dirname(training.__file__), 'train_{}.py'.format(recipe))
    module, name = where.split('.')
    code = CTRL_C_SCRIPT.format(recipes=os.path.dirname(path), recipe=path, module=module,
                                name=name)
    done = subprocess.run(
        [sys.executable, '-c', code] + RECIPES[recipe][1] +
        ['--dataset-root', voc_root, '--save-prefix', str(tmp_path / 'run')],
        capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == -signal.SIGINT, output          # a shell loop stops too
    assert message in output and output.count('interrupted') == 1
    assert 'Traceback' not in output
