"""Data-parallel training through MXNet's parameter server, all on 127.0.0.1.

A scheduler, a server and two workers are separate processes configured with
MXNet's ``DMLC_*`` variables, exactly as ``tools/launch.py`` would start them on
several machines. Each worker runs the tiny Faster R-CNN recipe on its own
shard with ``--kvstore dist_sync``; at the end both must hold identical
parameters (weights through the summed gradients, BatchNorm statistics
copied from worker 0 after each epoch), while each draws its own random samples.
"""
import argparse
import os
import random
import socket
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(REPO, 'recipes', 'train_faster_rcnn.py')
sys.path.insert(0, os.path.join(REPO, 'recipes'))

import arguments  # noqa: E402  pylint: disable=wrong-import-position
import parallel  # noqa: E402  pylint: disable=wrong-import-position


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start(role, command, port, log):
    env = dict(os.environ, DMLC_ROLE=role, DMLC_PS_ROOT_URI='127.0.0.1',
               DMLC_PS_ROOT_PORT=str(port), DMLC_NUM_SERVER='1', DMLC_NUM_WORKER='2',
               DMLC_NODE_HOST='127.0.0.1', OMP_NUM_THREADS='1')
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def run_two_workers(worker, tmp_path):
    """A scheduler, a server and two ``worker`` commands on 127.0.0.1; asserts all exit 0."""
    port, processes = free_port(), []
    with open(str(tmp_path / 'processes.log'), 'w') as log:
        try:
            for role in ('scheduler', 'server'):       # importing mxnet runs their loop
                processes.append(start(role, [sys.executable, '-c', 'import mxnet'], port, log))
            for _ in range(2):
                processes.append(start('worker', worker, port, log))
            codes = [p.wait(timeout=180) for p in processes]
        except subprocess.TimeoutExpired:
            codes = None
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
    assert codes == [0, 0, 0, 0], open(str(tmp_path / 'processes.log')).read()[-3000:]


def assert_identical_workers(prefix):
    """Both workers saved the same parameters, and training moved their BatchNorm statistics."""
    first = mx.nd.load(prefix + '-worker0.params')
    second = mx.nd.load(prefix + '-worker1.params')
    assert sorted(first) == sorted(second)
    for name in first:
        np.testing.assert_array_equal(first[name].asnumpy(), second[name].asnumpy(),
                                      err_msg=name)
    # not trivially equal: training moved the BatchNorm statistics away from their start
    means = [first[name].asnumpy() for name in first if name.endswith('running_mean')]
    assert means and all(np.abs(m).max() > 0 for m in means)


def test_two_workers_end_with_identical_parameters(voc_root, tmp_path):
    prefix = str(tmp_path / 'run')
    run_two_workers([sys.executable, RECIPE, '--kvstore', 'dist_sync', '--dataset-root',
                     voc_root, '--num-train-images', '8', '--num-val-images', '2',
                     '--epochs', '2', '--save-prefix', prefix], tmp_path)
    assert_identical_workers(prefix)


def draws():
    return np.concatenate([mx.nd.random.uniform(shape=4).asnumpy(), np.random.rand(4),
                           [random.random()]])


def test_each_worker_draws_its_own_random_samples():
    # with one seed on every worker, all drew the same mx.random keys: two images of
    # one shape on two workers then shared most of their sampled anchors
    by_rank = []
    for rank in range(3):
        parallel.seed_everything(5, rank)
        by_rank.append(draws())
    mx.random.seed(5)
    np.random.seed(5)
    random.seed(5)
    np.testing.assert_array_equal(by_rank[0], draws())     # worker 0 is the one-worker run
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert not np.isin(by_rank[i], by_rank[j]).any()
    # after --resume: seeded from (seed, epoch), worker 0 as before, each other its own
    resumed = [parallel.worker_seed([5, 3], rank) for rank in range(3)]
    assert resumed[0] == int(np.random.SeedSequence([5, 3]).generate_state(1)[0] % (2 ** 31 - 1))
    assert len(set(resumed)) == 3 and not set(resumed) & {parallel.worker_seed(5, r)
                                                          for r in range(1, 3)}


def test_a_dist_kvstore_outside_a_launched_job_exits_clearly(monkeypatch):
    # without its variables MXNet's parameter server aborts in C++ (ps-lite's postoffice)
    for name in parallel.DMLC_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('DMLC_ROLE', 'worker')
    with pytest.raises(SystemExit, match='--kvstore dist_sync .* DMLC_PS_ROOT_URI, '
                                         'DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER, DMLC_NUM_WORKER '
                                         'not set'):
        parallel.Distributed('dist_sync')


def test_the_kvstore_flag_takes_the_kinds_the_recipes_support():
    parser = arguments.add_common_args(argparse.ArgumentParser(), 'runs/x', 1, 0.1, 2)
    for kind in parallel.KVSTORES:
        assert parser.parse_args(['--kvstore', kind]).kvstore == kind
    # a typo used to train one worker alone in silence; asynchronous updates would leave
    # the workers with different weights
    for wrong in ('dsit_sync', 'dist-sync', 'dist_async'):
        with pytest.raises(SystemExit):
            parser.parse_args(['--kvstore', wrong])
