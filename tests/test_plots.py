"""recipes/plots.py: figures that stay readable for 3, 20 or 80 classes."""
import copy
import os
import sys
import warnings

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'recipes'))

import plots  # noqa: E402  pylint: disable=wrong-import-position


def aps_of(values):
    aps = {'class{}'.format(i): v for i, v in enumerate(values)}
    known = [v for v in values if v is not None]
    aps['mAP'] = float(np.mean(known)) if known else None
    return aps


def test_few_classes_are_one_group_in_dataset_order():
    aps = aps_of([0.5, None, 0.9, 0.1])
    groups, note = plots.class_ap_bars(aps)
    assert groups == [['class0', 'class2', 'class3'], ['mAP']]
    assert note == '1 without ground truth left out'


def test_many_classes_show_the_lowest_and_highest():
    values = list(np.linspace(1, 0, 30)) + [None]               # class0 best, class29 worst
    groups, note = plots.class_ap_bars(aps_of(values), limit=7)
    assert groups == [['class29', 'class28', 'class27'],        # lowest first
                      ['class3', 'class2', 'class1', 'class0'], ['mAP']]
    assert note == 'lowest 3 and highest 4 of 30; 1 without ground truth left out'


def test_limit_splits_lowest_and_highest_and_ties_keep_dataset_order():
    groups, note = plots.class_ap_bars(aps_of([0.5] * 5 + [0.1, 0.9]), limit=4)
    assert groups[:2] == [['class5', 'class0'], ['class4', 'class6']]
    assert note == 'lowest 2 and highest 2 of 7'


def test_nothing_evaluated_yet_draws_no_bars():
    assert plots.class_ap_bars({}) == ([], '')
    assert plots.class_ap_bars(aps_of([None, None])) == ([], '2 without ground truth left out')


def layout_warnings(caught):
    """matplotlib's warnings that a figure's axes and labels did not fit (tight_layout)."""
    return [str(w.message) for w in caught if 'layout' in str(w.message).lower()]


def run_metrics(num_classes, epochs=3, seed=0, coco=False):
    """A run's metrics as RunReport writes them, with ``num_classes`` classes (and COCO's
    AP summaries in each epoch with ``coco``)."""
    rng = np.random.RandomState(seed)
    names = ['class{}'.format(i) for i in range(num_classes)]
    stage = {'images': 4, 'positives_per_image': 5., 'negatives_per_image': 251.,
             'fill_rate': 1.}
    records = []
    for epoch in range(1, epochs + 1):
        aps = aps_of(list(rng.rand(num_classes)))
        aps = dict(zip(names + ['mAP'], aps.values()))
        records.append({'epoch': epoch, 'map': aps, 'sampler': {'rpn': dict(stage)}})
        if coco:
            records[-1]['coco'] = dict(AP=aps['mAP'] / 2, AP50=aps['mAP'], AP75=None)
    return {'recipe': 'train_faster_rcnn', 'args': {'network': 'tiny', 'dataset': 'coco'},
            'loss_curve': {'total': list(rng.rand(50))}, 'epochs': records,
            'final': {'map': records[-1]['map'], 'sampler': {'rpn': dict(stage)}}}


@pytest.mark.parametrize('num_classes, coco', [(3, False), (20, False), (80, True)])
def test_run_figure_lays_out_for_any_number_of_classes(tmp_path, num_classes, coco):
    path = str(tmp_path / 'run.png')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        plots.plot_metrics(path, run_metrics(num_classes, coco=coco))
    assert not layout_warnings(caught)
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('num_classes', [3, 20, 80])
def test_evaluation_figure_lays_out_for_any_number_of_classes(tmp_path, num_classes):
    rng = np.random.RandomState(num_classes)
    aps = run_metrics(num_classes)['final']['map']
    curves = {name: (None if i == 1 else sorted(rng.rand(101), reverse=True))
              for i, name in enumerate(n for n in aps if n != 'mAP')}
    aps = copy.copy(aps)
    aps['class1'] = None
    result = {'run': 'runs/x', 'dataset': 'coco', 'images': 10, 'map': aps,
              'recall_levels': list(np.linspace(0, 1, 101)), 'precision': curves}
    if num_classes == 80:                                       # as for --dataset coco
        result['coco'] = dict(AP=0.2, AP50=0.4, AP75=0.1, APs=None, APm=0.3, APl=0.25)
    path = str(tmp_path / 'eval.png')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        plots.plot_evaluation(path, result)
    assert not layout_warnings(caught)
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_loss_curves_of_short_runs_keep_several_points():
    assert [plots.smoothing_window(n) for n in (0, 1, 7, 8, 20, 79, 80, 1800)] == \
        [1, 1, 1, 2, 5, 19, 20, 20]
    import matplotlib.pyplot as plt
    for length in (1, 3, 20, 1800):
        figure, ax = plt.subplots()
        plots._plot_losses(ax, {'total': list(np.linspace(2, 1, length)), 'rpn': [1.] * length})
        lines = ax.get_lines()
        window = plots.smoothing_window(length)
        assert [len(line.get_xdata()) for line in lines] == [length - window + 1] * 2
        # each point: the mean of the `window` iterations up to its x (1-based)
        assert lines[0].get_xdata()[0] == window and lines[0].get_xdata()[-1] == length
        assert np.isclose(lines[0].get_ydata()[0], np.linspace(2, 1, length)[:window].mean())
        assert ('per iteration' if window == 1 else '{}-iteration mean'.format(window)) \
            in ax.get_title()
        plt.close(figure)


def test_the_run_title_names_an_iteration_limit():
    assert plots._title({'network': 'tiny', 'epochs': 12, 'max_iters': None}) == \
        'network=tiny, epochs=12'
    assert plots._title({'epochs': 12, 'max_iters': 20, 'seed': 0}) == \
        'epochs=12, max_iters=20, seed=0'


def test_epoch_axes_tick_whole_epochs_only(tmp_path):
    import matplotlib.pyplot as plt
    metrics = run_metrics(3, epochs=1)
    metrics['epochs'][0]['sampler']['mining'] = {'mined_loss_mean': 1., 'all_loss_mean': .5}
    for plot in (plots._plot_map, plots._plot_counts, plots._plot_mining):
        figure, ax = plt.subplots()
        plot(ax, metrics['epochs'])
        figure.canvas.draw()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), (plot.__name__, ticks)
        assert ax.get_xlabel() == 'epoch'
        plt.close(figure)


def test_exactly_limit_classes_stay_one_group():
    groups, note = plots.class_ap_bars(aps_of([0.3, 0.1, 0.2, 0.4]), limit=4)
    assert groups == [['class0', 'class1', 'class2', 'class3'], ['mAP']] and note == ''


def test_class_ap_bars_rows_colours_and_title():
    import matplotlib.pyplot as plt
    figure, ax = plt.subplots()
    # 5 classes, limit 24: one group, a blank row, then mAP; the first name on top
    aps = aps_of([0.5, None, 0.9, 0.1, 0.3])
    plots.plot_class_ap(ax, aps, 'AP')
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        'class0', 'class2', 'class3', 'class4', 'mAP']
    assert list(ax.get_yticks()) == [0, -1, -2, -3, -5]
    assert [p.get_width() for p in ax.patches] == [0.5, 0.9, 0.1, 0.3, aps['mAP']]
    colours = [p.get_facecolor() for p in ax.patches]
    assert colours[:4] == [colours[0]] * 4 and colours[4] != colours[0]
    assert colours[4] == matplotlib_colour('tab:orange')
    assert ax.get_title() == 'AP\n(1 without ground truth left out)'
    plt.close(figure)


def matplotlib_colour(name):
    from matplotlib.colors import to_rgba
    return to_rgba(name)


def test_a_line_and_label_for_each_of_up_to_ten_classes():
    import matplotlib.pyplot as plt
    for num_classes, labels in [(10, ['c{}'.format(i) for i in range(10)] + ['mAP']),
                                (11, ['each class', 'mAP'])]:
        figure, ax = plt.subplots()
        series = {'c{}'.format(i): [0.1 * i, 0.2] for i in range(num_classes)}
        series['mAP'] = [0.5, 0.5]
        plots._per_class_lines(ax, [1, 2], series, 'mAP', 'mAP')
        assert len(ax.get_lines()) == num_classes + 1
        assert ax.get_legend_handles_labels()[1] == labels
        plt.close(figure)


def test_many_precision_curves_draw_their_mean():
    import matplotlib.pyplot as plt
    figure, ax = plt.subplots()
    # 11 classes (beyond FEW_CLASSES): the bold line is the mean, not the median
    curves = {'c{}'.format(i): [1., 0.01 * i ** 2] for i in range(11)}
    curves['none'] = None                                       # no ground truth: not drawn
    plots.plot_precision(ax, [0., 1.], curves, {'mAP': 0.25})
    lines = ax.get_lines()
    assert len(lines) == 12
    assert np.allclose(lines[-1].get_ydata(), [1., 0.35])      # the median is 0.25
    assert lines[-1].get_label() == 'mean of the classes (mAP 0.250)'
    plt.close(figure)


def test_loss_curves_of_different_lengths_share_the_shortest_ones_window():
    import matplotlib.pyplot as plt
    figure, ax = plt.subplots()
    plots._plot_losses(ax, {'total': [1.] * 80, 'rcnn': [2.] * 8})
    # window 8 // 4 = 2 for both, not 80 // 4 = 20
    assert [len(line.get_xdata()) for line in ax.get_lines()] == [79, 7]
    assert '2-iteration mean' in ax.get_title()
    plt.close(figure)


def test_run_curves_skip_epochs_without_evaluation_and_plot_fill_rates_in_percent():
    import matplotlib.pyplot as plt
    metrics = run_metrics(3, epochs=3)
    metrics['epochs'][1]['map'] = None                          # not evaluated that epoch
    metrics['epochs'][2]['sampler']['rpn']['fill_rate'] = 0.5
    figure, ax = plt.subplots()
    plots._plot_map(ax, metrics['epochs'])
    assert [list(line.get_xdata()) for line in ax.get_lines()] == [[1, 3]] * 4
    ax.clear()
    plots._plot_counts(ax, metrics['epochs'])
    assert [(line.get_label(), list(line.get_ydata())) for line in ax.get_lines()] == [
        ('rpn positives', [5., 5., 5.]), ('rpn negatives', [251., 251., 251.]),
        ('rpn fill rate (%)', [100., 100., 50.])]
    plt.close(figure)


def test_histogram_bars_start_at_their_left_edges_and_mining_lines_are_labelled():
    import matplotlib.pyplot as plt
    figure, ax = plt.subplots()
    hist = {'edges': [0., 0.25, 0.5], 'counts': [4, 2]}
    plots._plot_histogram(ax, {'rpn': {'negative_iou_histogram': hist}, 'mining': 1.})
    assert [(p.get_x(), p.get_width(), p.get_height()) for p in ax.patches] == [
        (0., 0.25, 4), (0.25, 0.25, 2)]
    ax.clear()
    epochs = [{'epoch': 1, 'sampler': {'mining': {'mined_loss_mean': 2., 'all_loss_mean': .5}}},
              {'epoch': 2, 'sampler': {}}]
    plots._plot_mining(ax, epochs)
    assert [(line.get_label(), list(line.get_ydata())) for line in ax.get_lines()] == [
        ('mined candidates', [2.]), ('all candidates', [.5])]
    plt.close(figure)


def test_soak_figure_draws_growth_from_the_warmup_reading(monkeypatch):
    saved = []
    monkeypatch.setattr(plots, '_save', lambda figure, path, title: saved.append(figure))
    rows = [{'block': 'a', 'iterations': 120, 'rss_after_warmup_mb': 100., 'growth_mb': 3.,
             'memory': [[50, 101.], [100, 102.], [120, 103.]]}]
    plots.plot_soak('soak.png', rows, warmup=20, reshape_every=50, tolerance_mb=20.)
    ax = saved[0].axes[0]
    block = ax.get_lines()[0]
    assert (block.get_label(), list(block.get_xdata()), list(block.get_ydata())) == (
        'a (+3.0 MiB)', [50., 100., 120.], [1., 2., 3.])
    # tolerance, zero, then a dotted line at each input-shape change: calls 50 and 100
    assert [list(line.get_xdata()) for line in ax.get_lines()[3:]] == [[50, 50], [100, 100]]
    assert list(ax.get_lines()[1].get_ydata()) == [20., 20.]
    import matplotlib.pyplot as plt
    plt.close(saved[0])


def test_a_missing_value_is_nan_not_zero():
    assert np.isnan(plots.number(None)) and plots.number(0.25) == 0.25
