"""The recipes' figures: a training run's report, an evaluation's curves and bars, memory.

- :func:`plot_metrics`: a run's PNG (losses, mAP per epoch and per class,
  sampler statistics), redrawn during the run and at its end;
- :func:`plot_precision` and :func:`plot_class_ap`: ``evaluate.py``'s
  precision curves and AP bars;
- :func:`plot_soak`: ``soak.py``'s resident memory of each block over its calls.

Datasets differ in how many classes they hold: 3 (the synthetic one), 20
(VOC), 80 (COCO). Up to :data:`FEW_CLASSES` classes every class gets its own
labelled line; beyond it each class is a thin unlabelled grey line under the
mean. Up to :data:`MAX_BARS` classes with an AP the bar chart shows them all;
beyond it the lowest and highest halves of that many (every class's AP stays in
the JSON next to the PNG).
"""
import numpy as np

import entry

#: Up to this many classes, a line (with a legend entry) for each.
FEW_CLASSES = 10
#: A per-class AP chart shows at most this many classes: the lowest and highest half.
MAX_BARS = 24
#: A loss curve of fewer points than this marks each point.
MARKED_POINTS = 50
#: The memory figure marks the input-shape changes when there are at most this many.
MAX_SHAPE_LINES = 40


def _figure(rows, columns, size):
    import matplotlib           # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    return plt.subplots(rows, columns, figsize=size)


def _epoch_axis(ax):
    """Label the x axis 'epoch', with whole-number ticks only (one epoch: one tick)."""
    from matplotlib.ticker import MaxNLocator  # pylint: disable=import-outside-toplevel
    ax.set_xlabel('epoch')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _save(figure, path, title):
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    figure.suptitle(title)
    figure.tight_layout()
    entry.write_whole(path, lambda scratch: figure.savefig(scratch, dpi=80))
    plt.close(figure)


def number(value):
    """An AP or any reported value as a float: NaN for None (nothing to measure)."""
    return float('nan') if value is None else value


def _classes(aps):
    """The class names of ``aps`` (name -> AP or None, 'mAP' included), without 'mAP'."""
    return [name for name in aps if name != 'mAP']


# ----------------------------------------------------------------------------- per class

def class_ap_bars(aps, limit=MAX_BARS):
    """Which classes a per-class AP chart shows, in groups, and what it leaves out.

    aps: name -> AP, or None for a class without ground truth; 'mAP' may be
    among them. Classes (and 'mAP') without an AP are left out. When at most
    ``limit`` classes remain they form one group in the dataset's order;
    otherwise two: the ``limit // 2`` lowest and the ``limit - limit // 2``
    highest, lowest first (equal APs in the dataset's order). ``['mAP']`` is
    the last group. Returns ``(groups, note)``: ``groups`` a list of lists of
    names, ``note`` '' or what was left out.
    """
    scored = [name for name in _classes(aps) if aps[name] is not None]
    skipped = len(_classes(aps)) - len(scored)
    notes = ['{} without ground truth left out'.format(skipped)] if skipped else []
    groups = [scored] if scored else []
    if len(scored) > limit:
        ranked = sorted(scored, key=lambda name: aps[name])     # stable: dataset order on ties
        low = limit // 2
        notes.insert(0, 'lowest {} and highest {} of {}'.format(low, limit - low, len(scored)))
        groups = [ranked[:low], ranked[len(ranked) - (limit - low):]]
    if aps.get('mAP') is not None:
        groups.append(['mAP'])
    return groups, '; '.join(notes)


def plot_class_ap(ax, aps, title):
    """Horizontal AP bars (:func:`class_ap_bars`, a blank row between groups), 'mAP' in
    its own colour, on axes ``ax``. aps: name -> AP or None, as
    ``evaluation.average_precisions`` gives.
    """
    groups, note = class_ap_bars(aps or {})
    names, rows, row = [], [], 0
    for group in groups:
        names += group
        rows += list(range(row, row + len(group)))
        row += len(group) + 1
    positions = -np.asarray(rows, dtype=float)                  # first name on top
    colours = ['tab:orange' if name == 'mAP' else 'tab:blue' for name in names]
    ax.barh(positions, [aps[name] for name in names], color=colours)
    ax.set_yticks(positions)
    ax.set_yticklabels(names, fontsize=8 if len(names) > 12 else 10)
    ax.set(title=title + ('\n({})'.format(note) if note else ''), xlim=(0, 1), xlabel='AP')


def _per_class_lines(ax, xs, series, mean_name, mean_label, marker='.'):
    """One line per class (name -> ys) with ``series[mean_name]`` drawn bold.

    Up to :data:`FEW_CLASSES` classes each line has its own label; beyond,
    classes are thin grey lines sharing one legend entry.
    """
    classes = [name for name in series if name != mean_name]
    few = len(classes) <= FEW_CLASSES
    for i, name in enumerate(classes):
        if few:
            ax.plot(xs, series[name], marker=marker, linewidth=1, label=name)
        else:
            ax.plot(xs, series[name], color='0.6', linewidth=0.6, alpha=0.6,
                    label='each class' if i == 0 else None)
    if mean_name in series:
        ax.plot(xs, series[mean_name], marker=marker, linewidth=2.5, color=None if few else 'k',
                label=mean_label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def plot_precision(ax, recall_levels, curves, aps):
    """Interpolated precision against recall for each class, on axes ``ax``.

    curves: class name -> precisions at ``recall_levels``, or None (no
    ground truth: not drawn); aps: name -> AP, 'mAP' included. With many
    classes the bold line is the mean of the drawn curves.
    """
    drawn = {name: curve for name, curve in curves.items() if curve is not None}
    few = len(drawn) <= FEW_CLASSES
    series = {'{} (AP {:.3f})'.format(name, aps[name]) if few else name: curve
              for name, curve in drawn.items()}
    if not few:
        series['mean'] = np.mean(list(drawn.values()), axis=0)
    label = 'mean of the classes (mAP {:.3f})'.format(number(aps.get('mAP')))
    _per_class_lines(ax, recall_levels, series, 'mean', label, marker=None)
    ax.set(title='interpolated precision', xlabel='recall', ylabel='precision',
           xlim=(0, 1), ylim=(0, 1.02))


# ----------------------------------------------------------------------------- a run

def plot_metrics(path, metrics):
    """Loss curves, mAP per epoch and per class, and sampler statistics in one PNG.

    ``metrics`` as ``report.RunReport`` makes them; during a run, its ``final``
    is ``RunReport.summary`` so far.
    """
    figure, axes = _figure(2, 3, (16, 9))
    _plot_losses(axes[0, 0], metrics['loss_curve'])
    _plot_map(axes[0, 1], metrics['epochs'])
    plot_class_ap(axes[0, 2], metrics['final']['map'], 'AP per class, last evaluation')
    _plot_counts(axes[1, 0], metrics['epochs'])
    _plot_histogram(axes[1, 1], metrics['final']['sampler'])
    _plot_mining(axes[1, 2], metrics['epochs'])
    _save(figure, path, '{} ({})'.format(metrics['recipe'], _title(metrics['args'])))


def _title(args):
    keys = ('network', 'rpn_sampler', 'rcnn_sampler', 'miner', 'dataset', 'epochs',
            'max_iters', 'seed')
    return ', '.join('{}={}'.format(k, args[k]) for k in keys if args.get(k) is not None)


def smoothing_window(length, window=20):
    """Iterations averaged per point of a loss curve of ``length`` iterations.

    ``window``, or fewer on a short run: at least four points from eight
    iterations on, one iteration a point below that (so only a one-iteration
    run draws a single point).

    Parameters
    ----------
    length : int
        Iterations in the curve, >= 0.
    window : int, default 20
        Iterations a point on a long run.
    """
    return max(1, min(window, length // 4))


def _smooth(values, window):
    """Running means of ``window`` consecutive values: (len - window + 1,)."""
    return np.convolve(np.asarray(values, dtype=float), np.ones(window) / window, mode='valid')


def _plot_losses(ax, curve):
    length = min((len(values) for values in curve.values()), default=0)
    window = smoothing_window(length)
    for name, values in curve.items():
        if values:
            points = _smooth(values, window)
            ax.plot(np.arange(len(points)) + window, points, label=name,
                    marker='.' if len(points) < MARKED_POINTS else None)
    ax.set(title='training losses ({})'.format(
        'per iteration' if window == 1 else '{}-iteration mean'.format(window)),
        xlabel='iteration', yscale='log')
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _plot_map(ax, epochs):
    done = [e for e in epochs if e.get('map')]
    names = list(done[0]['map']) if done else []
    series = {name: [number(e['map'][name]) for e in done] for name in names}
    _per_class_lines(ax, [e['epoch'] for e in done], series, 'mAP', 'mAP')
    coco = [e for e in done if e.get('coco')]
    if coco:                                                    # --dataset coco
        ax.plot([e['epoch'] for e in coco], [number(e['coco']['AP']) for e in coco], '--',
                marker='.', color='tab:purple', label='COCO AP@[.5:.95]')
        ax.legend(fontsize=8)
    ax.set(title='VOC07 AP@0.5{} on the validation set'.format(' and COCO AP' if coco else ''),
           ylim=(0, 1))
    _epoch_axis(ax)


def _plot_counts(ax, epochs):
    xs = [e['epoch'] for e in epochs]
    for stage in (epochs[0]['sampler'] if epochs else {}):
        if not isinstance(epochs[0]['sampler'][stage], dict) or \
                'positives_per_image' not in epochs[0]['sampler'][stage]:
            continue
        for kind, style in (('positives_per_image', '-'), ('negatives_per_image', '--')):
            ax.plot(xs, [e['sampler'][stage][kind] for e in epochs], style, marker='.',
                    label='{} {}'.format(stage, kind.split('_')[0]))
        ax.plot(xs, [100 * e['sampler'][stage]['fill_rate'] for e in epochs], ':', marker='.',
                label='{} fill rate (%)'.format(stage))
    ax.set(title='samples per image', yscale='log')
    _epoch_axis(ax)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _plot_histogram(ax, sampler):
    for stage, stats in sampler.items():
        if isinstance(stats, dict) and 'negative_iou_histogram' in stats:
            hist = stats['negative_iou_histogram']
            edges = np.asarray(hist['edges'])
            ax.bar(edges[:-1], hist['counts'], width=np.diff(edges), align='edge',
                   alpha=0.6, label=stage, edgecolor='k')
    ax.set(title='best IoU of the selected negatives', xlabel='IoU', xlim=(0, 0.6),
           yscale='log')
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _plot_mining(ax, epochs):
    mined = [e for e in epochs if e['sampler'].get('mining')]
    if not mined:
        ax.text(0.5, 0.5, 'no hard example mining in this run', ha='center', va='center')
        ax.set_axis_off()
        return
    xs = [e['epoch'] for e in mined]
    ax.plot(xs, [e['sampler']['mining']['mined_loss_mean'] for e in mined], marker='.',
            label='mined candidates')
    ax.plot(xs, [e['sampler']['mining']['all_loss_mean'] for e in mined], marker='.',
            label='all candidates')
    ax.set(title='mean loss: mined against all')
    _epoch_axis(ax)
    ax.legend(fontsize=8)


# ----------------------------------------------------------------------------- an evaluation

def plot_evaluation(path, result):
    """``evaluate.py``'s PNG: precision curves and AP per class, side by side."""
    tall = sum(len(group) for group in class_ap_bars(result['map'])[0]) > 16
    figure, (curves, bars) = _figure(1, 2, (13, 7 if tall else 5))
    plot_precision(curves, result['recall_levels'], result['precision'], result['map'])
    plot_class_ap(bars, result['map'], 'VOC07 AP at IoU 0.5')
    title = '{} on {} ({} images)'.format(result['run'], result['dataset'], result['images'])
    if result.get('coco'):
        title += '; COCO ' + ', '.join('{} {:.3f}'.format(name, number(value))
                                       for name, value in result['coco'].items())
    _save(figure, path, title)


# ----------------------------------------------------------------------------- memory

def plot_soak(path, rows, warmup, reshape_every, tolerance_mb):
    """``soak.py``'s PNG: each block's resident memory over its calls, less its reading
    after ``warmup`` calls (what the pass/fail rule compares), with the tolerance.

    rows: ``soak.soak`` rows, each with ``memory``, ``[call, MiB]`` pairs.
    """
    figure, ax = _figure(1, 1, (9, 5))
    for row in rows:
        calls, mib = np.array(row['memory'], dtype=float).reshape(-1, 2).T
        ax.plot(calls, mib - row['rss_after_warmup_mb'], label='{} ({:+.1f} MiB)'.format(
            row['block'], row['growth_mb']), marker='.' if len(calls) < MARKED_POINTS else None)
    ax.axhline(tolerance_mb, color='tab:red', linestyle='--', linewidth=1,
               label='tolerance (+{:g} MiB)'.format(tolerance_mb))
    ax.axhline(0, color='grey', linewidth=0.8)
    ax.axvspan(0, warmup, color='0.9', label='warm-up')
    iterations = max(row['iterations'] for row in rows)
    changes = range(reshape_every, iterations, reshape_every)
    if len(changes) <= MAX_SHAPE_LINES:
        for call in changes:
            ax.axvline(call, color='0.75', linestyle=':', linewidth=0.8)
    ax.set_xlabel('calls ({}: the input shape changes)'.format(
        'dotted' if len(changes) <= MAX_SHAPE_LINES else 'every {}'.format(reshape_every)))
    ax.set_ylabel('resident memory after warm-up (MiB)')
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1.))
    _save(figure, path, 'memory of each block, hybridized with static_alloc: {} calls, a new '
                        'input shape every {}'.format(iterations, reshape_every))
