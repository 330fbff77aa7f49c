"""Documentation stays true: every public constructor argument is documented."""
import ast
import importlib
import inspect
import pathlib
import re

import pytest

import gluonmine

MODULES = ['gluonmine.quota', 'gluonmine.rpn', 'gluonmine.transforms', 'gluonmine.rcnn_target',
           'gluonmine.ohem', 'gluonmine.hard_negative', 'gluonmine.losses', 'gluonmine.rcnn',
           'gluonmine.rcnn_ohem', 'gluonmine.data']


def public_classes():
    classes = {getattr(gluonmine, name) for name in gluonmine.__all__
               if inspect.isclass(getattr(gluonmine, name))}
    for module_name in MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
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
    readme = pathlib.Path('README.md').read_text()
    block = re.search(r'<!-- test-command -->\s*```\s*(.+?)\s*```\s*<!-- /test-command -->',
                      readme, re.S)
    assert block, 'README.md has no test command block'
    assert 'test-command' in pathlib.Path('.ci/run').read_text()
