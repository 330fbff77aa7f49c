"""recipes/entry.py: Ctrl-C ends every recipe script as SIGINT does, saying what was kept
and without a traceback; files are written whole."""
import os
import signal
import subprocess
import sys

import pytest

RECIPES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'recipes')

# a recipe run as a script, Ctrl-C arriving while it parses its flags
INTERRUPTED_SCRIPT = """
import argparse, runpy, sys
def interrupted(*args, **kwargs):
    raise KeyboardInterrupt
argparse.ArgumentParser.parse_args = interrupted
sys.path.insert(0, {recipes!r})
sys.argv = [{path!r}]
runpy.run_path({path!r}, run_name='__main__')
"""

# run_script around a main() that reports the interruption itself, or not
REPORTED_SCRIPT = """
import sys
sys.path.insert(0, {recipes!r})
import entry
def main():
    interrupt = KeyboardInterrupt()
    interrupt.logged = {logged}
    print('the recipe says what it kept', file=sys.stderr)
    raise interrupt
entry.run_script(main, 'nothing reported')
"""


def _run(code):
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize('logged, printed', [
    (True, 'the recipe says what it kept\n'),
    (False, 'the recipe says what it kept\nnothing reported\n')])
def test_run_script_adds_its_line_only_for_an_unreported_interruption(logged, printed):
    code, output = _run(REPORTED_SCRIPT.format(recipes=RECIPES, logged=logged))
    assert code == -signal.SIGINT and output == printed


@pytest.mark.parametrize('recipe, message', [
    ('train_faster_rcnn', 'interrupted before training started'),
    ('train_ssd', 'interrupted before training started'),
    ('evaluate', 'interrupted before the evaluation finished'),
    ('export', 'interrupted before the export or its check finished'),
    ('show_samples', 'interrupted before the figure was written'),
    ('benchmark', 'interrupted before the first section'),
    ('soak', 'interrupted before the first block')])
def test_every_recipe_script_ends_by_sigint_without_a_traceback(recipe, message):
    path = os.path.join(RECIPES, recipe + '.py')
    code, output = _run(INTERRUPTED_SCRIPT.format(recipes=RECIPES, path=path))
    assert code == -signal.SIGINT, output
    assert output.strip().splitlines()[-1] == message and 'Traceback' not in output


def test_an_interrupted_write_leaves_the_previous_file(tmp_path):
    sys.path.insert(0, RECIPES)
    import entry        # pylint: disable=import-outside-toplevel
    path = tmp_path / 'report.json'
    entry.write_json(str(path), {'sections': 1})

    def interrupted(scratch):
        with open(scratch, 'w') as f:
            f.write('{"sections": ')
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        entry.write_whole(str(path), interrupted)
    assert path.read_text() == '{\n "sections": 1\n}' and os.listdir(str(tmp_path)) == [
        'report.json']                                      # no scratch file left
    entry.write_json(str(tmp_path / 'new' / 'report.json'), [1])    # its folder is made
    assert (tmp_path / 'new' / 'report.json').read_text() == '[\n 1\n]'


def test_the_scratch_file_keeps_the_extension(tmp_path):
    # matplotlib chooses a figure's format from the name it writes to
    sys.path.insert(0, RECIPES)
    import entry        # pylint: disable=import-outside-toplevel
    names = []

    def write(scratch):
        names.append(os.path.basename(scratch))
        open(scratch, 'w').close()
    entry.write_whole(str(tmp_path / 'run.png'), write)
    assert names == ['.run.partial.png'] and os.listdir(str(tmp_path)) == ['run.png']
