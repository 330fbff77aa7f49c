"""The soak script runs every block and reports memory (a short run; the full one is a recipe)."""
import json
import os
import sys

import pytest
from mxnet import gluon

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'recipes'))

import soak  # noqa: E402  pylint: disable=wrong-import-position


def test_short_soak_reports_every_block(tmp_path):
    out = tmp_path / 'soak.json'
    soak.main(['--iterations', '40', '--warmup', '10', '--reshape-every', '15',
               '--tolerance-mb', '200', '--out', str(out)])
    rows = json.loads(out.read_text())
    assert [row['block'] for row in rows] == list(soak.BLOCKS)
    assert all(row['ok'] and row['iterations'] == 40 for row in rows)
    assert (tmp_path / 'soak.png').stat().st_size > 0


def test_memory_readings_and_figure(tmp_path):
    import warnings
    out = tmp_path / 'mem.json'
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)  # e.g. matplotlib's layout warnings
        soak.main(['--only', 'rpn_sampler,quota_sampler', '--iterations', '120', '--warmup',
                   '20', '--reshape-every', '30', '--tolerance-mb', '200', '--out', str(out)])
    for row in json.loads(out.read_text()):     # a reading every 50 calls and after the last
        calls = [call for call, _ in row['memory']]
        assert calls == [50, 100, 120]
        assert row['memory'][-1][1] == pytest.approx(row['rss_end_mb'], abs=0.06)
    assert (tmp_path / 'mem.png').stat().st_size > 0


def test_ctrl_c_keeps_the_finished_blocks(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'soak.json'
    real = soak.soak

    def interrupted_at_the_second(name, *rest):
        if name == 'quota_sampler':
            raise KeyboardInterrupt
        return real(name, *rest)
    monkeypatch.setattr(soak, 'soak', interrupted_at_the_second)
    with pytest.raises(KeyboardInterrupt) as raised:
        soak.main(['--only', 'rpn_sampler,quota_sampler,rpn_generator', '--iterations', '20',
                   '--warmup', '5', '--tolerance-mb', '200', '--out', str(out)])
    assert raised.value.logged                  # entry.run_script prints nothing more
    assert [row['block'] for row in json.loads(out.read_text())] == ['rpn_sampler']
    printed = capsys.readouterr()
    assert '| rpn_sampler | 20 |' in printed.out
    assert 'interrupted in block quota_sampler: 1 finished block(s) kept in {} and {}'.format(
        out, tmp_path / 'soak.png') in printed.err
    assert (tmp_path / 'soak.png').stat().st_size > 0     # the finished block's figure
    assert sorted(os.listdir(str(tmp_path))) == ['soak.json', 'soak.png']   # no scratch file


@pytest.mark.parametrize('flags, message', [
    (['--iterations', '0'], '--iterations and --reshape-every'),
    (['--reshape-every', '0'], '--iterations and --reshape-every'),
    (['--iterations', '30', '--warmup', '30'], '--warmup takes a number from 0 to'),
    (['--out', 'runs/soak.png'], '--out names a .json file')])
def test_flags_are_checked(flags, message, capsys):
    with pytest.raises(SystemExit):
        soak.main(flags)
    assert message in capsys.readouterr().err


def test_warmup_defaults_to_at_most_a_tenth_of_the_iterations():
    assert soak.parse_args([]).warmup == 200
    assert soak.parse_args(['--iterations', '100']).warmup == 10
    assert soak.parse_args(['--iterations', '100', '--warmup', '50']).warmup == 50


class _Echo(gluon.HybridBlock):
    """A block without parameters: its input, unchanged."""

    def hybrid_forward(self, F, x):  # pylint: disable=arguments-differ
        return x * 1


def test_a_blocks_row_from_its_readings(monkeypatch):
    # readings of 100, 101, ... MiB: the warm-up's (after call 4) is 100, then one each
    # 4 calls and after the last; growth 3 MiB, at the tolerance, passes
    readings = iter(range(100, 110))
    monkeypatch.setattr(soak, 'resident_mb', lambda: float(next(readings)))
    monkeypatch.setattr(soak, 'READ_EVERY', 4)
    shapes = []

    def make_inputs(rng, batch, n, m):
        shapes.append((batch, n, m))
        return [rng.uniform(size=(batch, n))]
    args = soak.parse_args(['--iterations', '10', '--warmup', '3', '--reshape-every', '4',
                            '--tolerance-mb', '3'])
    row = soak.soak('echo', _Echo, make_inputs, [(1, 2, 0), (2, 3, 0)], args)
    assert shapes == [(1, 2, 0)] * 4 + [(2, 3, 0)] * 4 + [(1, 2, 0)] * 2   # sizes cycle
    assert row == dict(block='echo', iterations=10, rss_after_warmup_mb=100., rss_end_mb=103.,
                       growth_mb=3., ok=True, memory=[[4, 101.], [8, 102.], [10, 103.]])


def test_unknown_blocks_and_the_default_tolerance():
    with pytest.raises(SystemExit, match='unknown block.s. nope; known: rpn_sampler, '):
        soak.main(['--only', 'rpn_sampler,nope', '--iterations', '2'])
    assert soak.parse_args([]).tolerance_mb == 20.


def test_ctrl_c_in_the_first_block_draws_nothing(tmp_path, monkeypatch, capsys):
    def interrupted(*_):
        raise KeyboardInterrupt
    monkeypatch.setattr(soak, 'soak', interrupted)
    with pytest.raises(KeyboardInterrupt):
        soak.main(['--iterations', '20', '--out', str(tmp_path / 'soak.json')])
    assert 'interrupted in block rpn_sampler: 0 finished block(s)\n' in capsys.readouterr().err
    assert os.listdir(str(tmp_path)) == []
