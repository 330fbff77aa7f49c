"""Where a run computes: its devices, this worker's place in a data-parallel job, the
seeds each worker draws with, and the trainer that keeps the workers in step.

- :func:`contexts`: the ``--gpus`` devices, or the CPU;
- :class:`Distributed`: with a ``dist_*`` kvstore, one worker of a job over
  MXNet's parameter server (``--kvstore``), else the only worker;
- :func:`worker_seed`, :func:`seed_everything`: each worker's own seeds;
- :func:`share_untrained`: what gradients do not reach (BatchNorm statistics),
  from worker 0's first device to every device of every worker;
- :func:`build_trainer`: SGD with warm-up and cosine decay over the kvstore.
"""
import os
import random

import mxnet as mx
import numpy as np
from mxnet import gluon


def worker_seed(entropy, rank):
    """A 31-bit seed from ``entropy`` (int or list of ints) for worker ``rank`` of a run.

    Worker 0's seed does not depend on the rank (a one-worker run is worker 0);
    every other worker's is its own, so that the workers of a ``dist_*`` run
    draw different random samples from ``mx.random`` (with one seed, two images
    of one shape on two workers shared 85% of their sampled negative anchors).
    """
    spawn_key = (rank,) if rank else ()
    return int(np.random.SeedSequence(entropy, spawn_key=spawn_key).generate_state(1)[0]
               % (2 ** 31 - 1))


def seed_everything(seed, rank=0):
    """Seed MXNet's, NumPy's and Python's generators: with ``seed`` itself on worker 0,
    with :func:`worker_seed` on the others."""
    seed = worker_seed(seed, rank) if rank else seed
    mx.random.seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def contexts(gpus):
    """The training devices: one ``mx.gpu(i)`` per id, or the CPU. SystemExit for ids this
    MXNet cannot see (a CPU-only build sees none), before anything runs on them."""
    visible = mx.context.num_gpus() if gpus else 0
    if any(not 0 <= i < visible for i in gpus):
        raise SystemExit('--gpus {}: this MXNet sees {} GPU(s){}'.format(
            ' '.join(str(i) for i in gpus), visible,
            ' (a CPU-only build; a CUDA build is e.g. mxnet-cu112==1.9.1)' if not visible else ''))
    return [mx.gpu(i) for i in gpus] or [mx.cpu()]


#: The ``--kvstore`` values: one machine, or synchronous training over the parameter server
#: (asynchronous updates would leave the workers with different weights).
KVSTORES = ('device', 'local', 'nccl', 'dist_sync', 'dist_device_sync')
#: What MXNet's parameter server reads to join a job (ps-lite aborts without them).
DMLC_VARIABLES = ('DMLC_ROLE', 'DMLC_PS_ROOT_URI', 'DMLC_PS_ROOT_PORT', 'DMLC_NUM_SERVER',
                  'DMLC_NUM_WORKER')


class Distributed(object):
    """This process's place in a data-parallel run, and MXNet's kvstore for it.

    With a ``dist_*`` kvstore, the processes started with MXNet's ``DMLC_*``
    variables (scheduler, servers, workers) form one job: ``gluon.Trainer``
    pushes every worker's gradients to the servers, which sum them and apply
    the optimizer (``update_on_kvstore``), and every worker pulls the same new
    weights. :meth:`share_untrained` hands what gradients do not reach
    (BatchNorm running statistics) from worker 0 to the others, so that all
    workers end with identical parameters. Otherwise this is one worker.

    Parameters
    ----------
    kvstore : str
        The ``--kvstore`` flag.
    """

    def __init__(self, kvstore):
        self.name = kvstore
        missing = [name for name in DMLC_VARIABLES if name not in os.environ] \
            if 'dist' in kvstore else []
        if missing:
            raise SystemExit('--kvstore {} makes this process one worker of a job started with '
                             "MXNet's DMLC_* variables; {} not set (see \"Several machines\" in "
                             'recipes/README.md)'.format(kvstore, ', '.join(missing)))
        self.kv = mx.kv.create(kvstore) if 'dist' in kvstore else None
        self.rank = self.kv.rank if self.kv else 0
        self.num_workers = self.kv.num_workers if self.kv else 1
        self._next_key = None

    def trainer_kvstore(self):
        """What ``gluon.Trainer`` gets as ``kvstore``."""
        return self.kv if self.kv else self.name

    def share_untrained(self, params, first_key):
        """Give every device of every worker the values of ``params`` (a list of
        Parameters) on worker 0's first device.

        Across workers, each call initialises fresh kvstore keys from worker 0
        (a key's first value is stored as is, never passed to the servers'
        optimizer) and pulls them everywhere. ``first_key`` must lie above the
        Trainer's own keys (0 .. number of trained parameters - 1).
        """
        if not params or (not self.kv and len(params[0].list_ctx()) == 1):
            return                                  # one worker, one device: all agree
        arrays = [p.data(p.list_ctx()[0]) for p in params]
        if self.kv:
            start = first_key if self._next_key is None else self._next_key
            keys = list(range(start, start + len(params)))
            self._next_key = keys[-1] + 1
            self.kv.broadcast(keys, arrays, out=arrays)
        for param, array in zip(params, arrays):
            param.set_data(array)


def share_untrained(net, trainer_params, dist):
    """Give every device and worker the first device's values (worker 0's) of what the
    trainer does not update (BatchNorm running statistics, which each device updates
    from its own images), so that all hold the parameters that are saved.

    ``trainer_params`` maps names to the parameters the trainer updates.
    """
    untrained = [p for name, p in sorted(net.collect_params().items())
                 if name not in trainer_params and not isinstance(p, gluon.Constant)]
    dist.share_untrained(untrained, first_key=len(trainer_params))


def build_trainer(params, args, num_iters, dist):
    """SGD with momentum, linear warm-up then cosine decay over ``num_iters`` updates.

    ``params`` maps names to the parameters to train (``grad_req`` not 'null').
    """
    warmup = min(args.warmup_iters, max(num_iters - 1, 0))
    schedule = mx.lr_scheduler.CosineScheduler(
        max(num_iters, 1), base_lr=args.lr, final_lr=args.lr * 0.01, warmup_steps=warmup,
        warmup_begin_lr=args.lr * 0.1)
    optimizer = {'learning_rate': args.lr, 'momentum': args.momentum, 'wd': args.wd,
                 'lr_scheduler': schedule, 'clip_gradient': 5.}
    return gluon.Trainer(params, 'sgd', optimizer, kvstore=dist.trainer_kvstore())
