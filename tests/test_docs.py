"""Documentation stays true: every public constructor argument and every recipe flag is
documented."""
import argparse
import ast
import importlib
import inspect
import pathlib
import re

import pytest

import gluonmine

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = ['gluonmine.quota', 'gluonmine.rpn', 'gluonmine.transforms', 'gluonmine.rcnn_target',
           'gluonmine.ohem', 'gluonmine.hard_negative', 'gluonmine.losses', 'gluonmine.rcnn',
           'gluonmine.rcnn_ohem', 'gluonmine.data']


def public_classes():
    classes = {getattr(gluonmine, name) for name in gluonmine.__all__
               if inspect.isclass(getattr(gluonmine, name))}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        classes.update(obj for name, obj in vars(module).items()
                       if inspect.isclass(obj) and not name.startswith('_')
                       and obj.__module__ == module_name)
    return sorted(classes, key=lambda c: c.__name__)


@pytest.mark.parametrize('cls', public_classes(), ids=lambda c: c.__name__)
def test_constructor_arguments_are_documented(cls):
    doc = inspect.getdoc(cls) or ''
    params = [name for name, p in inspect.signature(cls.__init__).parameters.items()
              if name != 'self' and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    missing = [name for name in params if not re.search(r'^{} :'.format(name), doc, re.M)]
    assert not missing, '{} does not document {}'.format(cls.__name__, missing)


@pytest.mark.parametrize('cls', public_classes(), ids=lambda c: c.__name__)
def test_documented_defaults_match_the_signature(cls):
    doc = inspect.getdoc(cls) or ''
    for name, param in inspect.signature(cls.__init__).parameters.items():
        match = re.search(r'^{} : [^\n]*default (?:is )?([^\n]+)$'.format(name), doc, re.M)
        if match and param.default is not inspect.Parameter.empty:
            documented = match.group(1).strip()
            try:
                same = ast.literal_eval(documented) == param.default
            except (ValueError, SyntaxError):
                same = documented in (repr(param.default), str(param.default))
            assert same, '{}.{}: documented {}, signature {!r}'.format(
                cls.__name__, name, documented, param.default)


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / 'README.md').read_text()
    block = re.search(r'<!-- test-command -->\s*```\s*(.+?)\s*```\s*<!-- /test-command -->',
                      readme, re.S)
    assert block, 'README.md has no test command block'
    assert 'test-command' in (ROOT / '.ci' / 'run').read_text()


# recipe: (document, its section) that describes its flags
RECIPE_DOCS = {name: ('recipes/README.md', name + '.py') for name in
               ('train_faster_rcnn', 'train_ssd', 'evaluate', 'show_samples', 'export')}
RECIPE_DOCS.update(benchmark=('README.md', 'Benchmarks'), soak=('README.md', 'Long runs: memory'))


def recipe_flags(name, monkeypatch):
    """The long options of a recipe's command line, read from its argparse usage."""
    class Parsed(Exception):
        pass

    def stop(parser, *args, **kwargs):
        raise Parsed(parser.format_usage())

    monkeypatch.syspath_prepend(str(ROOT / 'recipes'))
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', stop)
    with pytest.raises(Parsed) as usage:
        importlib.import_module(name).parse_args([])
    return set(re.findall(r'\[(--[a-z][a-z0-9-]*)', str(usage.value))) - {'--help'}


def doc_section(document, title):
    text = (ROOT / document).read_text()
    found = re.search(r'^## {}\n(.*?)(?=^## |\Z)'.format(re.escape(title)), text, re.S | re.M)
    assert found, '{} has no section "{}"'.format(document, title)
    return found.group(1)


@pytest.mark.parametrize('name', sorted(RECIPE_DOCS))
def test_every_recipe_flag_is_documented_and_every_documented_flag_exists(name, monkeypatch):
    flags = recipe_flags(name, monkeypatch)
    section = doc_section(*RECIPE_DOCS[name])
    mentioned = set(re.findall(r'(?<![\w-])(--[a-z][a-z0-9-]*)(?![\w-])', section))
    tabled = set(re.findall(r'^\| `(--[a-z][a-z0-9-]*)', section, re.M))
    assert flags and not flags - mentioned, 'undocumented: {}'.format(sorted(flags - mentioned))
    assert not tabled - flags, 'documented, not a flag: {}'.format(sorted(tabled - flags))
