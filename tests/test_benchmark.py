"""The benchmark recipe end to end in its smoke mode, and the agreement checks it runs first."""
import json
import os
import re
import subprocess
import sys

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

    def run(self, quick):
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
