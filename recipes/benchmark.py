#!/usr/bin/env python
"""gluonmine side by side with the GluonCV components it replaces, on this machine.

Every section times both implementations in this one process, on the same CPU,
and prints a Markdown table with their ratio; ``--out`` keeps all tables as
JSON, rewritten after each section, so Ctrl-C keeps the finished ones (the
JSON then names the section interrupted, ``interrupted_in``). Sections live
in ``recipes/bench_*.py``: each defines ``NAME``, ``TITLE`` and ``run(quick)``,
which returns ``(columns, rows, notes)``.

    python recipes/benchmark.py                 # every section
    python recipes/benchmark.py --only rpn      # one section (comma-separate several)
    python recipes/benchmark.py --quick         # fewer repeats, smaller sizes: a smoke run
"""
import argparse
import glob
import importlib
import os
import platform
import sys
import time

import entry

HERE = os.path.dirname(os.path.abspath(__file__))
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MXNET_OMP_MAX_THREADS')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--only', default='', help='comma-separated section names (default: all)')
    parser.add_argument('--quick', action='store_true', help='fewer repeats and smaller inputs')
    parser.add_argument('--out', default=os.path.join('runs', 'benchmark.json'),
                        help='where to write all tables as JSON (default: runs/benchmark.json)')
    return parser.parse_args(argv)


def discover():
    """Section modules, in file-name order: {name: module}."""
    sys.path.insert(0, HERE)
    modules = [importlib.import_module(os.path.basename(path)[:-3])
               for path in sorted(glob.glob(os.path.join(HERE, 'bench_*.py')))]
    return {module.NAME: module for module in modules}


def thread_settings():
    """The environment variables that set MXNet's OpenMP threads: {name: value or None}.

    Unset, MXNet 1.9.1 on x86 uses half the cores (README, "Things we found in
    the stack"), and the timings depend on it, so every report records them.
    """
    return {name: os.environ.get(name) for name in THREAD_VARIABLES}


def describe_threads(settings):
    """'OMP_NUM_THREADS=2' style text for the report header; MXNet's default when unset."""
    chosen = ['{}={}'.format(k, v) for k, v in settings.items() if v is not None]
    return ', '.join(chosen) or "MXNet's default OpenMP threads"


def markdown(columns, rows):
    """A Markdown table of rows (dicts keyed by column)."""
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        lines.append('| ' + ' | '.join(str(row.get(c, '')) for c in columns) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    sections = discover()
    wanted = [s for s in args.only.split(',') if s] or list(sections)
    unknown = [s for s in wanted if s not in sections]
    if unknown:
        raise SystemExit('unknown section(s) {}; known: {}'.format(
            ', '.join(unknown), ', '.join(sections)))
    import mxnet as mx
    threads = thread_settings()
    report = {'machine': platform.processor() or platform.machine(), 'cpus': os.cpu_count(),
              'mxnet': mx.__version__, 'threads': threads, 'quick': args.quick,
              'sections': {}}
    print('# gluonmine benchmark ({} CPUs, MXNet {}, {}{})\n'.format(
        os.cpu_count(), mx.__version__, describe_threads(threads),
        ', quick' if args.quick else ''))
    try:
        for name in wanted:
            report['sections'][name] = run_section(sections[name], name, args.quick)
            if args.out:
                entry.write_json(args.out, report)
    except KeyboardInterrupt as interrupt:
        report['interrupted_in'] = name
        finished = len(report['sections'])
        if finished and args.out:
            entry.write_json(args.out, report)
        print('interrupted in section {}: {} finished section(s){}'.format(
            name, finished, ' kept in ' + args.out if finished and args.out else ''),
            file=sys.stderr)
        interrupt.logged = True         # for entry.run_script
        raise
    if args.out:
        print('tables written to {}'.format(args.out))


def run_section(module, name, quick):
    """Time one section and print its table; returns what the JSON report keeps of it."""
    start = time.time()
    columns, rows, notes = module.run(quick)
    print('## {} (`--only {}`)\n'.format(module.TITLE, name))
    print(markdown(columns, rows))
    for note in notes:
        print('\n' + note)
    print('\n({:.0f} s)\n'.format(time.time() - start), flush=True)
    return {'title': module.TITLE, 'columns': columns, 'rows': rows, 'notes': notes}


if __name__ == '__main__':
    entry.run_script(main, 'interrupted before the first section')
