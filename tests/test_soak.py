"""The soak script runs every block and reports memory (a short run; the full one is a recipe)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), 'recipes'))

import soak  # noqa: E402  pylint: disable=wrong-import-position


def test_short_soak_reports_every_block(tmp_path):
    out = tmp_path / 'soak.json'
    soak.main(['--iterations', '40', '--warmup', '10', '--reshape-every', '15',
               '--tolerance-mb', '200', '--out', str(out)])
    rows = json.loads(out.read_text())
    assert [row['block'] for row in rows] == list(soak.BLOCKS)
    assert all(row['ok'] and row['iterations'] == 40 for row in rows)
