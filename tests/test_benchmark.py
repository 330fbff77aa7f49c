"""The benchmark recipe end to end in its smoke mode, and the agreement checks it runs first."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'recipes'))

import bench_rcnn  # noqa: E402  pylint: disable=wrong-import-position

SECTIONS = {'mining', 'ohem_step', 'rcnn', 'rpn', 'transform'}
RATIOS = ('speedup', 'speedup_vs_gluoncv', 'ohem_over_this')       # one a row


def test_quick_benchmark_passes_its_checks_and_writes_every_table(tmp_path):
    # every section checks that both sides agree before timing: a failed check exits non-zero
    out = tmp_path / 'benchmark.json'
    env = dict(os.environ, MXNET_OMP_MAX_THREADS='1')
    env.pop('OMP_NUM_THREADS', None)
    done = subprocess.run([sys.executable, os.path.join(REPO, 'recipes', 'benchmark.py'),
                           '--quick', '--out', str(out)], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report['quick'] and set(report['sections']) == SECTIONS
    # timings depend on MXNet's OpenMP threads: the report says what they were set to
    assert report['threads'] == {'OMP_NUM_THREADS': None, 'MXNET_OMP_MAX_THREADS': '1'}
    assert 'MXNET_OMP_MAX_THREADS=1, quick)' in done.stdout.splitlines()[0]
    for name, section in report['sections'].items():
        assert '(`--only {}`)'.format(name) in done.stdout
        assert section['rows'], name
        for row in section['rows']:
            assert set(row) <= set(section['columns']), name
            ratios = [row[c] for c in RATIOS if c in row]
            assert len(ratios) == 1 and re.fullmatch(r'\d+\.\d+x', ratios[0]), (name, row)


@pytest.fixture(name='rcnn_outputs', scope='module')
def fixture_rcnn_outputs():
    """GluonCV's and gluonmine's RCNN samples of the benchmark's 2-image batch."""
    from gluoncv.model_zoo.rcnn.faster_rcnn.rcnn_target import RCNNTargetSampler as Theirs
    from gluonmine.rcnn_target import RCNNTargetSampler as Ours
    args = (2, bench_rcnn.PROPOSALS, bench_rcnn.LAYOUTS['FPN'], 0.5, 0.25, bench_rcnn.GTS)
    inputs = bench_rcnn.batch(2)
    return Theirs(*args)(*inputs), Ours(*args)(*inputs)


def test_rcnn_check_accepts_the_two_samplers(rcnn_outputs):
    bench_rcnn.check_common_rois(*rcnn_outputs)


@pytest.mark.parametrize('output, change', [(1, lambda samples: -samples),      # labels
                                            (2, lambda matches: matches + 1)])  # matches
def test_rcnn_check_rejects_a_changed_label_or_match(rcnn_outputs, output, change):
    theirs, ours = rcnn_outputs
    ours = list(ours)
    ours[output] = change(ours[output])
    with pytest.raises(AssertionError, match='differ'):
        bench_rcnn.check_common_rois(theirs, ours)


def test_rcnn_check_rejects_samples_with_nothing_in_common(rcnn_outputs):
    theirs, ours = rcnn_outputs
    moved = ours[0] + 0.5
    with pytest.raises(AssertionError, match='in common'):
        bench_rcnn.check_common_rois(theirs, [moved] + list(ours[1:]))


class _Section(object):
    """A stand-in benchmark section: one row, or Ctrl-C while it runs."""

    def __init__(self, name, interrupted=False):
        self.NAME, self.TITLE, self.interrupted = name, 'section ' + name, interrupted
        self.quick = None

    def run(self, quick):
        self.quick = quick
        if self.interrupted:
            raise KeyboardInterrupt
        return ['what', 'speedup'], [{'what': self.NAME, 'speedup': '1.00x'}], []


def test_ctrl_c_keeps_the_finished_sections(tmp_path, monkeypatch, capsys):
    import benchmark
    sections = {'a': _Section('a'), 'b': _Section('b', interrupted=True), 'c': _Section('c')}
    monkeypatch.setattr(benchmark, 'discover', lambda: sections)
    out = tmp_path / 'benchmark.json'
    with pytest.raises(KeyboardInterrupt) as raised:
        benchmark.main(['--out', str(out)])
    assert raised.value.logged                  # entry.run_script prints nothing more
    report = json.loads(out.read_text())
    assert list(report['sections']) == ['a'] and report['interrupted_in'] == 'b'
    printed = capsys.readouterr()
    assert '(`--only a`)' in printed.out and '(`--only c`)' not in printed.out
    assert 'interrupted in section b: 1 finished section(s) kept in {}'.format(
        out) in printed.err


def test_ctrl_c_in_the_first_section_leaves_an_earlier_report_alone(tmp_path, monkeypatch):
    import benchmark
    monkeypatch.setattr(benchmark, 'discover', lambda: {'a': _Section('a', interrupted=True)})
    out = tmp_path / 'benchmark.json'
    out.write_text('{"earlier": true}')
    with pytest.raises(KeyboardInterrupt):
        benchmark.main(['--out', str(out)])
    assert json.loads(out.read_text()) == {'earlier': True}


def test_unknown_sections_exit_and_the_quick_flag_reaches_the_sections(tmp_path, monkeypatch,
                                                                        capsys):
    import benchmark
    section = _Section('a')
    monkeypatch.setattr(benchmark, 'discover', lambda: {'a': section})
    with pytest.raises(SystemExit, match=r'unknown section\(s\) z; known: a'):
        benchmark.main(['--only', 'a,z'])
    out = tmp_path / 'benchmark.json'
    benchmark.main(['--out', str(out)])                     # no --quick
    assert section.quick is False and json.loads(out.read_text())['quick'] is False
    assert ', quick' not in capsys.readouterr().out.splitlines()[0]


def test_markdown_tables_and_thread_settings():
    import benchmark
    assert benchmark.markdown(['a', 'b'], [{'a': 1}, {'a': 2, 'b': 'x'}]) == (
        '| a | b |\n|---|---|\n| 1 |  |\n| 2 | x |')
    assert benchmark.describe_threads({'OMP_NUM_THREADS': None,
                                       'MXNET_OMP_MAX_THREADS': None}) == \
        "MXNet's default OpenMP threads"
    assert benchmark.describe_threads({'OMP_NUM_THREADS': '2', 'MXNET_OMP_MAX_THREADS': '1'}) \
        == 'OMP_NUM_THREADS=2, MXNET_OMP_MAX_THREADS=1'


def test_timing_columns_and_rounds(monkeypatch):
    import _timing
    assert _timing.speed_columns(0.004, 0.001) == {
        'gluoncv_ms': 4.0, 'gluonmine_ms': 1.0, 'speedup': '4.0x'}
    assert _timing.speed_columns(0.001, 0.002, 'reference') == {
        'reference_ms': 1.0, 'gluonmine_ms': 2.0, 'speedup': '0.5x'}
    # the rounds take turns between the functions; each keeps its fastest round
    first, second = (lambda: None), (lambda: None)
    times, calls = {first: iter([3., 1., 2.]), second: iter([5., 6., 4.])}, []

    def seconds_per_call(fn, repeat, warmup):
        calls.append(fn)
        return next(times[fn])
    monkeypatch.setattr(_timing, 'seconds_per_call', seconds_per_call)
    assert _timing.fastest([first, second], 1, rounds=3) == [1., 4.]
    assert calls == [first, second] * 3
    times = {first: iter([2.]), second: iter([1.])}
    assert _timing.fastest({'a': first, 'b': second}, 1, rounds=1) == {'a': 2., 'b': 1.}


def test_seconds_per_call_times_the_repeats_only(monkeypatch):
    import _timing
    clock, calls = iter([10., 14.]), []
    monkeypatch.setattr(_timing.time, 'perf_counter', lambda: next(clock))
    assert _timing.seconds_per_call(lambda: calls.append(1), repeat=4, warmup=2) == 1.
    assert len(calls) == 6


def test_ohem_step_rows_divide_ohems_time_by_each_steps(monkeypatch):
    import mxnet as mx
    import bench_ohem_step as bench

    class Step(object):
        losses = [mx.nd.ones(2)]
    times = {('GluonCV random', 128): 0.1, ('gluonmine random', 128): 0.05,
             ('gluonmine random', 64): 0.04, ('OHEM', 64): 0.2}
    monkeypatch.setattr(bench, 'faster_rcnn_steps', lambda post_nms, batch: {
        key: Step() for key in times})
    monkeypatch.setattr(bench, 'fastest', lambda steps, repeat, warmup: dict(times))
    rows = bench.faster_rcnn_rows(quick=True)
    assert [(r['setting'], r['step'], r['trained_rois'], r['ms'], r['ohem_over_this'])
            for r in rows[:4]] == [
                ('300 proposals/image', 'GluonCV random', 128, 100., '2.00x'),
                ('300 proposals/image', 'gluonmine random', 128, 50., '4.00x'),
                ('300 proposals/image', 'gluonmine random', 64, 40., '5.00x'),
                ('300 proposals/image', 'OHEM', 64, 200., '1.00x')]
    assert len(rows) == 8 and rows[4]['setting'] == '2000 proposals/image'


def test_ohem_step_builds_each_sampler_it_names(monkeypatch):
    import bench_ohem_step as bench
    installed, miners = [], []
    install, miner = bench.install_samplers, bench.HardExampleMiner
    monkeypatch.setattr(bench, 'install_samplers',
                        lambda net, **kwargs: installed.append(net) or install(net, **kwargs))
    monkeypatch.setattr(bench, 'HardExampleMiner', lambda num: miners.append(num) or miner(num))
    monkeypatch.setattr(bench, 'training_step', lambda model, *_: model)
    models = bench.faster_rcnn_steps(300, bench.detection_batch())
    assert installed == [models['gluonmine random', 128], models['gluonmine random', 64]]
    assert miners == [64] and models['OHEM', 64].net not in installed


def test_multibox_rows_check_equal_losses_and_divide_gluoncvs_time(monkeypatch):
    import bench_ohem_step as bench
    batch = bench.multibox_batch
    monkeypatch.setattr(bench, 'multibox_batch',
                        lambda contexts: batch(contexts, images=4, anchors=64))
    monkeypatch.setattr(bench, 'fastest', lambda steps, repeat, warmup: {
        'GluonCV': 0.02, 'gluonmine': 0.005})
    assert [(r['setting'], r['step'], r['ms'], r['speedup_vs_gluoncv'])
            for r in bench.multibox_rows(quick=True)] == [
                ('1 context(s)', 'GluonCV SSDMultiBoxLoss', 20., '1.00x'),
                ('1 context(s)', 'gluonmine SSDMultiBoxLoss', 5., '4.00x'),
                ('2 context(s)', 'GluonCV SSDMultiBoxLoss', 20., '1.00x'),
                ('2 context(s)', 'gluonmine SSDMultiBoxLoss', 5., '4.00x')]
    ours = bench.SSDMultiBoxLoss

    class OnePercentOff(ours):
        def forward(self, *args):  # pylint: disable=arguments-differ
            sums, cls, box = super(OnePercentOff, self).forward(*args)
            return [x * 1.01 for x in sums], cls, box
    monkeypatch.setattr(bench, 'SSDMultiBoxLoss', OnePercentOff)
    with pytest.raises(AssertionError, match='Not equal to tolerance'):
        bench.multibox_rows(quick=True)


def test_mining_section_checks_then_reports_reference_over_ours(monkeypatch):
    import bench_mining as bench
    ssd_batch, theirs, numpy_ohem = bench.ssd_batch, bench.GluonCVOHEMSampler, bench.numpy_ohem
    shapes = []

    class Recorded(theirs):
        def forward(self, x, logits, ious):  # pylint: disable=arguments-differ
            shapes.append(ious.ndim)
            return super(Recorded, self).forward(x, logits, ious)
    monkeypatch.setattr(bench, 'ssd_batch', lambda batch: ssd_batch(2))
    monkeypatch.setattr(bench, 'GluonCVOHEMSampler', Recorded)
    monkeypatch.setattr(bench, 'fastest', lambda fns, repeat: [0.004, 0.001])
    rows = bench.run(quick=True)[1]
    assert sorted(set(shapes)) == [2, 3]                    # the (B, N, M) and (B, N) ious
    assert [(r['block'], r['reference_ms'], r['gluonmine_ms'], r['speedup']) for r in rows] == \
        [('OHEMSampler', 4., 1., '4.0x')] * 2 + [('HardExampleMiner', 4., 1., '4.0x')]
    # a NumPy mask that disagrees (its indices agree) fails the check
    monkeypatch.setattr(bench, 'numpy_ohem',
                        lambda *arrays: (numpy_ohem(*arrays)[0], 1 - numpy_ohem(*arrays)[1]))
    with pytest.raises(AssertionError, match='outputs differ'):
        bench.run(quick=True)


def test_rpn_section_reports_per_image_times(monkeypatch):
    import bench_rpn as bench
    monkeypatch.setattr(bench, 'LAYOUTS', {'C4': bench.LAYOUTS['C4']})
    monkeypatch.setattr(bench, 'BATCH', 2)
    monkeypatch.setattr(bench, 'fastest', lambda fns, repeat, rounds: [0.008, 0.004])
    rows = bench.run(quick=True)[1]
    assert [(r['step'].split(':')[0], r['gluoncv_ms'], r['gluonmine_ms'], r['speedup'])
            for r in rows] == [('generator', 4., 2., '2.0x'),
                               ('sampler alone, given the IoU matrix', 4., 2., '2.0x')]


def test_transform_section_checks_images_and_boxes_and_counts_anchors(monkeypatch):
    import bench_transform as bench
    image, boxes = np.zeros((3, 2, 2)), np.ones((1, 4))
    bench.check_same_layout(lambda: (image, boxes, np.zeros(5)),
                            lambda: (image, boxes, np.ones(5)))
    with pytest.raises(AssertionError):
        bench.check_same_layout(lambda: (image, boxes, np.zeros(5)),
                                lambda: (image, boxes + 1, np.zeros(5)))
    from gluonmine.models import tiny_faster_rcnn

    def tiny_only():
        net = tiny_faster_rcnn(['disc', 'square', 'triangle'])
        net.initialize()
        return [('tiny (recipe)', net, 240, 320)]
    monkeypatch.setattr(bench, 'networks', tiny_only)
    monkeypatch.setattr(bench, 'fastest', lambda fns, repeat, rounds: [0.002, 0.001])
    row, = bench.run(quick=True)[1]
    # 128x171 after resizing: a 16x22 feature map, 9 anchors a position
    assert row == dict(network='tiny (recipe)', image='240x320', anchors=16 * 22 * 9, gts=10,
                       gluoncv_ms=2., gluonmine_ms=1., speedup='2.0x')
