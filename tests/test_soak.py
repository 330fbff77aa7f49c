"""The soak script runs every block and reports memory (a short run; the full one is a recipe)."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'recipes'))

import soak  # noqa: E402  pylint: disable=wrong-import-position


def test_short_soak_reports_every_block(tmp_path):
    out = tmp_path / 'soak.json'
    soak.main(['--iterations', '40', '--warmup', '10', '--reshape-every', '15',
               '--tolerance-mb', '200', '--out', str(out)])
    rows = json.loads(out.read_text())
    assert [row['block'] for row in rows] == list(soak.BLOCKS)
    assert all(row['ok'] and row['iterations'] == 40 for row in rows)


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
    assert 'interrupted in block quota_sampler: 1 finished block(s) kept in {}'.format(
        out) in printed.err
