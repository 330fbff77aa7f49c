"""What every recipe script needs from the standard library alone: its entry point,
where Ctrl-C ends the recipe as SIGINT does, without a traceback; the PREFIX its
files share, as the command line names it; and files written whole, so that an
interruption leaves the previous file or the new one, never half.

Standard library only, so that recipes which import neither gluonmine nor
GluonCV (``export.py --check``) can use it.
"""
import json
import os
import signal
import sys


def run_script(main, unreported):
    """Call a recipe's ``main()``; Ctrl-C ends it as SIGINT does, without a traceback.

    A recipe that says itself what an interruption kept (where a checkpoint or
    the finished tables are) sets ``logged = True`` on the ``KeyboardInterrupt``
    before it re-raises it; otherwise ``unreported`` is printed. The process
    then dies by SIGINT's default action (status 130 in a shell), so a shell
    loop over recipes stops as well.

    Parameters
    ----------
    main : callable
        The recipe's entry point, called without arguments.
    unreported : str
        The line printed to stderr for an interruption the recipe did not report.
    """
    try:
        main()
    except KeyboardInterrupt as interrupt:
        if not getattr(interrupt, 'logged', False):
            print(unreported, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        sys.exit(130)           # where SIGINT's default action does not end the process


def prefix_of(*extensions):
    """An argparse ``type`` for a PREFIX the program adds extensions to: a path ending in one
    of ``extensions`` stands for its prefix (``runs/ssd.params`` -> ``runs/ssd``)."""
    def prefix(text):
        root, extension = os.path.splitext(text)
        return root if extension in extensions else text
    return prefix


RUN = prefix_of('.params', '.json')      # a training run: PREFIX.params beside PREFIX.json


def write_whole(path, write):
    """Make ``path`` by ``write(scratch)``, a scratch file beside it, then a rename.

    The scratch name keeps ``path``'s extension (matplotlib picks a figure's
    format from it) and is removed if ``write`` fails or is interrupted.
    """
    folder, name = os.path.split(path)
    stem, extension = os.path.splitext(name)
    scratch = os.path.join(folder, '.{}.partial{}'.format(stem, extension))
    try:
        write(scratch)
        os.replace(scratch, path)
    finally:
        if os.path.exists(scratch):
            os.remove(scratch)


def write_json(path, value):
    """``value`` as indented JSON at ``path``, written whole; its folder is made if missing."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)

    def dump(scratch):
        with open(scratch, 'w') as f:
            json.dump(value, f, indent=1)
    write_whole(path, dump)
