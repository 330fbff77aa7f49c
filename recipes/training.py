"""The training run every recipe shares: set-up, epochs, evaluation, checkpoints, reports.

A recipe (``train_faster_rcnn.py``, ``train_ssd.py``) keeps only what is its
own (the network, the samplers, the training :data:`Step`) and hands the rest
to :class:`Run`: seeds and this worker's place (``parallel.py``), the
datasets (``loaders.py``), epochs of :func:`train_epoch`, evaluation
(``evaluation.py``), a checkpoint after each epoch (``checkpoint.py``) and
``--resume`` from it, and the reports (``report.py``).
"""
import collections
import logging
import random
import time

import mxnet as mx
import numpy as np

import checkpoint
import coco_eval
import entry
import evaluation
import loaders
import parallel
import plots
import report


# A recipe's training step: ``run(batch) -> outputs`` (every device's forward and
# backward, then one update), ``losses(outputs) -> {name: float}`` (waits for the
# step to finish) and ``record(outputs, stats)`` (adds the selection statistics).
Step = collections.namedtuple('Step', 'run losses record')


def train_epoch(step, loader, stats, log, args, epoch, max_iters):
    """One pass over this worker's shard (at most ``max_iters`` iterations): an epoch record.

    Seconds per iteration count loading and the step until its losses are
    ready; statistics are gathered after the clock stops.
    """
    seconds, logger = [], logging.getLogger(report.LOGGER_NAME)
    bar = report.progress(min(len(loader), max_iters), 'epoch {}/{}'.format(epoch, args.epochs))
    tic = time.time()
    for i, batch in enumerate(loader):
        if i >= max_iters:
            break
        outputs = step.run(batch)
        log.add(step.losses(outputs))
        seconds.append(time.time() - tic)
        step.record(outputs, stats)
        running = log.running()
        bar.set_postfix({k: '{:.3f}'.format(v) for k, v in running.items()}, refresh=False)
        bar.update()
        if (i + 1) % args.log_interval == 0:
            logger.info('[epoch %d iteration %d] %.3f s/it %s', epoch, i + 1, seconds[-1],
                        report.fmt_values(running))
        tic = time.time()
    bar.close()
    return {'epoch': epoch, 'iterations': len(seconds), 'seconds': sum(seconds),
            'seconds_per_iteration': sum(seconds) / max(len(seconds), 1),
            'losses': log.end_epoch(), 'map': None}


class Run(object):
    """One training run: what every recipe's ``main`` does around its own network and step.

    On construction: seeds (:func:`parallel.seed_everything`), this worker's place
    (:class:`parallel.Distributed`), output paths, with ``--resume`` the checkpoint
    (read, and its flags checked against these), the log, devices and
    datasets, and the :class:`report.RunReport`. The recipe then builds its net,
    loaders, trainer (with :meth:`iterations`) and :data:`Step`, and calls
    :meth:`train`.

    Parameters
    ----------
    recipe : str
        The recipe's name (the metrics JSON's ``recipe``).
    args : argparse.Namespace
        Its flags (those of :func:`arguments.add_common_args` among them).
    losses : list of str
        Names of the losses its step reports.
    defaults : dict, optional
        The recipe's defaults (``vars(parse_args([]))``): a flag a checkpoint does
        not record, added to the recipe after it was written, had its default.
    """

    def __init__(self, recipe, args, losses, defaults=None):
        self.recipe, self.args = recipe, args
        self.dist = parallel.Distributed(args.kvstore)
        parallel.seed_everything(args.seed, self.dist.rank)
        self.paths = report.output_paths(args.save_prefix, self.dist)
        self.saved = checkpoint.load(self.paths['ckpt']) if args.resume else None
        if self.saved:
            check_resumable(recipe, self.saved, args, defaults)
        # every check before the log is opened: a refused command leaves a run's log alone
        self.start, self.ctx = time.time(), parallel.contexts(args.gpus)
        self.train_set, self.val_set, self.classes = loaders.build_datasets(args)
        self.logger = report.setup_logger(self.paths['log'], append=args.resume)
        self.logger.info('arguments: %s', vars(args))
        self._plotted = self.start
        self.coco = coco_eval.coco_metric(args, len(self.val_set)) if self.dist.rank == 0 else None
        self.report = report.RunReport(recipe, args, self.classes, self.dist, losses)

    def iterations(self, train_data):
        """Iterations of the whole run: ``--epochs`` passes, at most ``--max-iters``."""
        return min(self.args.epochs * len(train_data), self.args.max_iters or float('inf'))

    def train(self, net, params, trainer, step, loaders, new_stats, hybridize):
        """Train epoch after epoch, checkpoint each, write the reports: the metrics.

        Before each epoch ``hybridize()`` (the recipe's own setting, since
        evaluation re-hybridizes the net); after it, every device and worker
        takes worker 0's first device's BatchNorm statistics
        (:func:`parallel.share_untrained`), worker 0
        evaluates (:func:`evaluation.evaluate` on the run's devices and classes) every
        ``--val-interval`` epochs and after the last, and the run is saved
        (:meth:`save`). With ``--resume`` it starts after the checkpoint's
        last epoch (:meth:`resume`). ``params`` are the trained parameters
        by name, ``trainer`` their ``gluon.Trainer``, ``loaders``
        ``(train_loader, val_loader)``, ``new_stats()`` a fresh statistics
        dict for the step's ``record``.
        """
        args, run_report, dist = self.args, self.report, self.dist
        (train_data, val_data), num_iters = loaders, self.iterations(loaders[0])
        first = self.resume(net, trainer, new_stats) if self.saved else 1
        epoch = first
        try:
            for epoch in range(first, args.epochs + 1):
                train_data.set_epoch(epoch)
                hybridize()
                stats = new_stats()
                record = train_epoch(step, train_data, stats, run_report.losses, args, epoch,
                                     num_iters - run_report.iterations)
                parallel.share_untrained(net, params, dist)
                last = (epoch == args.epochs
                        or run_report.iterations + record['iterations'] >= num_iters)
                if dist.rank == 0 and (last or epoch % args.val_interval == 0):
                    record.update(evaluation.evaluate(net, val_data, self.ctx, self.classes,
                                                      self.coco))
                run_report.add_epoch(record, stats, self.logger)
                self.save(net, trainer, epoch, finished=last)
                if last:
                    break
        except KeyboardInterrupt as interrupt:
            if run_report.metrics['epochs']:
                self.plot_so_far()
            self.logger.warning('interrupted in epoch %d: %s', epoch, 'nothing saved yet' if
                                epoch == 1 else '{} holds the run up to epoch {}; the same '
                                'command with --resume continues it'.format(
                                    self.paths['ckpt'], epoch - 1))
            interrupt.logged = True         # for entry.run_script
            raise
        run_report.finish(self.paths, time.time() - self.start, self.logger)
        return run_report.metrics

    def save(self, net, trainer, epoch, finished):
        """Checkpoint the run after ``epoch``: PREFIX.ckpt and PREFIX.params, then (unless
        ``finished``: :meth:`report.RunReport.finish` writes them) the metrics so far, and the
        plot so far when the last is :data:`PLOT_EVERY` seconds old.

        Trainer states are not saved with a ``dist_*`` kvstore (its optimizer
        runs on the servers).
        """
        checkpoint.save(self.paths['ckpt'], net, None if self.dist.kv else trainer,
                        self.paths['params'], recipe=self.recipe, args=vars(self.args),
                        epoch=epoch, finished=finished, seconds=time.time() - self.start,
                        report=self.report.state(), numpy=np.random.get_state(),
                        python=random.getstate())
        if not finished:
            entry.write_json(self.paths['json'], self.report.metrics)
            if time.time() - self._plotted >= PLOT_EVERY:   # a plot takes about a second
                self.plot_so_far()

    def plot_so_far(self):
        """PREFIX.png of the epochs so far, with :meth:`report.RunReport.summary` as its
        ``final``."""
        so_far = self.report.summary(self.paths, time.time() - self.start)
        plots.plot_metrics(self.paths['png'], dict(self.report.metrics, final=so_far))
        self._plotted = time.time()

    def resume(self, net, trainer, new_stats):
        """Load the checkpoint into the net, trainer, report and generators: the first epoch
        still to train (past ``--epochs`` when the run had finished).

        Continues as the interrupted run would have, with one exception:
        MXNet cannot save ``mx.random``'s state, so it is seeded anew from
        ``(--seed, epoch)`` (and the rank, on workers other than 0:
        :func:`parallel.worker_seed`) and the random draws differ from an uninterrupted
        run's. With a ``dist_*`` kvstore the servers' optimizer resumes its
        update count (the learning-rate schedule) but not its momentum.
        """
        saved, args = self.saved, self.args
        restored = checkpoint.restore(saved, net, None if self.dist.kv else trainer, self.ctx)
        self.report.restore(saved['report'], new_stats, args)
        iterations = self.report.iterations
        if not restored:
            optimizer = trainer.optimizer
            optimizer.begin_num_update = optimizer.num_update = iterations
        np.random.set_state(saved['numpy'])
        random.setstate(saved['python'])
        mx.random.seed(parallel.worker_seed([args.seed, saved['epoch'] + 1], self.dist.rank))
        self.start -= saved['seconds']
        self.logger.info('resumed from %s after epoch %d (%d iterations)%s',
                         self.paths['ckpt'], saved['epoch'], iterations,
                         '' if restored else '; optimizer states restarted (dist kvstore)')
        return args.epochs + 1 if saved['finished'] else saved['epoch'] + 1


#: Seconds between two plots of a run in progress (each epoch's metrics JSON is written).
PLOT_EVERY = 60.


#: Flags a resumed run may change: they do not change what is trained.
RESUME_MAY_CHANGE = ('resume', 'num_workers', 'log_interval', 'val_interval', 'gpus',
                     'dataset_root', 'save_prefix')


def check_resumable(recipe, saved, args, defaults=None):
    """SystemExit when the checkpoint ``saved`` is another recipe's, or naming each flag of
    ``args`` that differs from its run's, other than :data:`RESUME_MAY_CHANGE`.

    A flag the checkpoint does not record was added to the recipe after it was
    written: the run had its default (``defaults``, a dict). A flag only the
    checkpoint records belongs to another recipe.
    """
    saved_recipe = saved.get('recipe')          # None: written before checkpoints named it
    if saved_recipe not in (None, recipe):
        raise SystemExit('--resume: the checkpoint is a {} run, this is {}'.format(
            saved_recipe, recipe))
    foreign = sorted(set(saved['args']) - set(vars(args)))
    if foreign:
        raise SystemExit('--resume: the checkpoint has flags {} that {} does not: another '
                         "recipe's run, or an older version's".format(', '.join(foreign),
                                                                      recipe))
    saved_args = dict(defaults or {}, **saved['args'])
    changed = ['--{} {} (checkpoint: {})'.format(name.replace('_', '-'), value,
                                                 saved_args.get(name))
               for name, value in sorted(vars(args).items())
               if name not in RESUME_MAY_CHANGE and saved_args.get(name) != value]
    if changed:
        raise SystemExit('--resume continues a run with its own flags; these differ: {}'
                         .format('; '.join(changed)))
