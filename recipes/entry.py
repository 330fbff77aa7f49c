"""A recipe's entry point: Ctrl-C ends the recipe as SIGINT does, without a traceback.

Standard library only, so that recipes which import neither gluonmine nor
GluonCV (``export.py --check``) can use it.
"""
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
