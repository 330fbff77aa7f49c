"""A run's reports: its metrics JSON and figure, its log and progress bars; reading it back.

:class:`RunReport` gathers the metrics (losses through :class:`LossLog`) and
writes PREFIX.json and PREFIX.png (the figures are ``plots.py``'s);
:func:`output_paths` names a run's files; :func:`setup_logger` and
:func:`progress` are the console; :func:`read_run` and
:func:`check_run_classes` read a run for ``evaluate.py`` and
``show_samples.py``.
"""
import json
import logging
import os
import sys

import numpy as np

import entry
import plots

LOGGER_NAME = 'gluonmine.recipes'


class LossLog(object):
    """Per-iteration loss values and their running and per-epoch means.

    Parameters
    ----------
    names : list of str
        Loss names, in display order.
    """

    def __init__(self, names):
        self.names = list(names)
        self.curve = {name: [] for name in self.names}
        self._epoch_start = 0

    def add(self, values):
        """Record one iteration: ``values`` maps each name to a float."""
        for name in self.names:
            self.curve[name].append(float(values[name]))

    def running(self, window=20):
        return {name: float(np.mean(v[-window:])) for name, v in self.curve.items() if v}

    def resume(self, curve):
        """Continue a saved ``curve`` (name -> values), its epochs ended."""
        self.curve = curve
        self._epoch_start = len(curve[self.names[0]])

    def end_epoch(self):
        """Means over the iterations since the last call."""
        start, self._epoch_start = self._epoch_start, len(self.curve[self.names[0]])
        return {name: float(np.mean(v[start:])) for name, v in self.curve.items()
                if len(v) > start}


class RunReport(object):
    """A run's metrics: per-iteration losses, epoch records, sampler statistics, final mAP.

    ``metrics`` (the JSON written by :meth:`finish`) holds ``recipe``,
    ``args``, ``classes``, ``rank``, ``num_workers``, ``loss_curve`` (loss
    name -> one value per iteration), ``epochs`` (one record per epoch:
    ``epoch``, ``iterations``, ``seconds``, ``seconds_per_iteration``,
    ``losses``, ``map`` or None, ``sampler``; with ``--dataset coco`` also
    ``coco`` when evaluated) and ``final`` (``map``: AP per class and 'mAP' of
    the last evaluation, ``mean_ap``, ``coco`` of the last COCO evaluation if
    any, ``iterations``, ``seconds_per_iteration``, ``wall_seconds``,
    ``sampler`` over the whole run, ``params``).

    Parameters
    ----------
    recipe : str
        The recipe's name.
    args : argparse.Namespace
        Its flags.
    classes : list of str
        Class names.
    dist : Distributed
        This worker's place.
    loss_names : list of str
        Names of the losses logged every iteration.
    """

    def __init__(self, recipe, args, classes, dist, loss_names):
        self.losses = LossLog(loss_names)
        self.metrics = {'recipe': recipe, 'args': vars(args), 'classes': list(classes),
                        'rank': dist.rank, 'num_workers': dist.num_workers,
                        'loss_curve': self.losses.curve, 'epochs': []}
        self._stats = None

    @property
    def iterations(self):
        return sum(e['iterations'] for e in self.metrics['epochs'])

    def add_epoch(self, record, stats, logger):
        """Keep an epoch record and its sampler statistics (name -> accumulator)."""
        record['sampler'] = {name: s.summary() for name, s in stats.items()}
        self.metrics['epochs'].append(record)
        if self._stats is None:
            self._stats = stats
        else:
            for name, s in stats.items():
                self._stats[name].merge(s)
        logger.info('[epoch %d] %d iterations, %.3f s/it, losses %s', record['epoch'],
                    record['iterations'], record['seconds_per_iteration'],
                    fmt_values(record['losses']))
        logger.info('[epoch %d] sampler %s', record['epoch'], _fmt_sampler(record['sampler']))
        if record.get('map'):
            logger.info('[epoch %d] VOC07 AP %s', record['epoch'], fmt_values(record['map']))
        if record.get('coco'):
            logger.info('[epoch %d] COCO %s', record['epoch'], fmt_values(record['coco']))

    def state(self):
        """The report as plain data, for a checkpoint (:meth:`restore` takes it back)."""
        stats = {name: dict(vars(s)) for name, s in (self._stats or {}).items()}
        return {'metrics': self.metrics, 'stats': stats}

    def restore(self, state, new_stats, args):
        """Continue a report from :meth:`state`; ``args`` are the resumed run's flags and
        ``new_stats()`` makes the statistics objects the saved counts go into."""
        self.metrics = dict(state['metrics'], args=vars(args))
        self.losses.resume(self.metrics['loss_curve'])
        self._stats = new_stats()
        for name, accumulator in self._stats.items():
            vars(accumulator).update(state['stats'][name])

    def summary(self, paths, wall_seconds):
        """The run so far: the metrics' ``final`` record."""
        epochs = self.metrics['epochs']
        evaluated = [e['map'] for e in epochs if e.get('map')]
        seconds = sum(e['seconds'] for e in epochs)
        final_map = evaluated[-1] if evaluated else None
        coco = [e['coco'] for e in epochs if e.get('coco')]
        return {'map': final_map, 'mean_ap': final_map.get('mAP') if final_map else None,
                **({'coco': coco[-1]} if coco else {}), 'iterations': self.iterations,
                'seconds_per_iteration': seconds / max(self.iterations, 1),
                'wall_seconds': wall_seconds, 'params': paths['params'],
                'sampler': {name: s.summary() for name, s in (self._stats or {}).items()}}

    def finish(self, paths, wall_seconds, logger):
        """Write the metrics JSON and the PNG; log where everything went."""
        self.metrics['final'] = self.summary(paths, wall_seconds)
        final_map = self.metrics['final']['map']
        entry.write_json(paths['json'], self.metrics)
        plots.plot_metrics(paths['png'], self.metrics)
        mean_ap = None if final_map is None else final_map['mAP']
        coco = self.metrics['final'].get('coco')
        logger.info('done in %.0f s: mAP %s%s; wrote %s', wall_seconds,
                    'n/a' if mean_ap is None else '{:.4f}'.format(mean_ap),
                    ' (COCO AP {:.4f})'.format(plots.number(coco['AP'])) if coco else '',
                    ', '.join(paths[k] for k in ('params', 'json', 'png', 'log')))


def fmt_values(values):
    """``{'a': 0.5, 'b': None}`` -> ``'a=0.5000 b=nan'``: a log line's numbers."""
    return ' '.join('{}={:.4f}'.format(k, plots.number(v)) for k, v in values.items())


def _fmt_sampler(sampler):
    """An epoch's sampler statistics (stage -> summary) as one log line."""
    parts = []
    for stage, stats in sampler.items():
        if stats:
            parts.append('{}: {:.1f} pos {:.1f} neg/image, fill {:.3f}'.format(
                stage, stats['positives_per_image'], stats['negatives_per_image'],
                stats['fill_rate']) if 'fill_rate' in stats else '{}: {}'.format(
                    stage, fmt_values(stats)))
    return '; '.join(parts)


def read_run(prefix, recipes):
    """A training run's metrics (``PREFIX.json``, next to ``PREFIX.params``); SystemExit
    when PREFIX holds no run of one of ``recipes`` (their names, e.g. 'train_ssd')."""
    path = prefix + '.json'
    if not os.path.isfile(path) or not os.path.isfile(prefix + '.params'):
        workers = ' (a run of several workers: each has its own, {}-worker0 first)'.format(
            prefix) if os.path.isfile(prefix + '-worker0.json') else ''
        raise SystemExit('{}: no training run there (PREFIX.json and PREFIX.params, written '
                         'by recipes/train_*.py --save-prefix PREFIX){}'.format(prefix, workers))
    with open(path) as f:
        run = json.load(f)
    if run.get('recipe') not in recipes:
        raise SystemExit('{}: written by {!r}, not by {}'.format(
            path, run.get('recipe'), ' or '.join(sorted(recipes))))
    return run


def run_flags(run, defaults, **overrides):
    """Flags as a dict: a recipe's ``defaults`` (for flags newer than the run), a run's own
    (:func:`read_run`; None: no run), then every ``overrides`` value that is not None. A
    VOC-format dataset is read for the run's classes (``classes``), whatever it trained on."""
    flags = dict(defaults, **(run['args'] if run else {}))
    flags.update((name, value) for name, value in overrides.items() if value is not None)
    if run and flags['dataset'] == 'voc':
        flags['classes'] = run['classes']
    return flags


def check_run_classes(run, classes, dataset):
    """SystemExit unless a dataset's ``classes`` are those a run (:func:`read_run`) trained."""
    if classes != run['classes']:
        raise SystemExit('the run was trained for classes {}, --dataset {} has {}'.format(
            run['classes'], dataset, classes))


def output_paths(prefix, dist):
    """{'params', 'json', 'png', 'log', 'ckpt'}: PREFIX.ext, or PREFIX-workerR.ext with several
    workers."""
    if dist.num_workers > 1:
        prefix = '{}-worker{}'.format(prefix, dist.rank)
    directory = os.path.dirname(prefix)
    if directory:
        os.makedirs(directory, exist_ok=True)
    return {ext: prefix + '.' + ext for ext in ('params', 'json', 'png', 'log', 'ckpt')}


class _TqdmHandler(logging.StreamHandler):
    """Console logging that does not break a progress bar."""

    def emit(self, record):
        from tqdm import tqdm
        tqdm.write(self.format(record), file=sys.stderr)


def setup_logger(path, append=False):
    """The recipes' logger, writing to ``path`` (after what it holds with ``append``) and to
    the console."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S')
    for handler in (logging.FileHandler(path, mode='a' if append else 'w'), _TqdmHandler()):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def progress(total, description):
    """A tqdm progress bar on stderr (hidden when stderr is not a terminal)."""
    from tqdm import tqdm
    return tqdm(total=total, desc=description, unit='it', dynamic_ncols=True, leave=False,
                disable=None)
