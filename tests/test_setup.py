"""setup.py: the dependency set it declares, for the CPU build of MXNet or a CUDA one."""
import os
import pathlib
import subprocess
import sys

import pytest

import gluonmine

ROOT = pathlib.Path(__file__).resolve().parents[1]


def egg_info(tmp_path, mxnet=None):
    """Run ``setup.py egg_info`` with ``GLUONMINE_MXNET=mxnet`` (unset for None): (return code,
    output, the requirement lines and the version it declares)."""
    env = {k: v for k, v in os.environ.items() if k != 'GLUONMINE_MXNET'}
    if mxnet is not None:
        env['GLUONMINE_MXNET'] = mxnet
    done = subprocess.run([sys.executable, 'setup.py', '-q', 'egg_info', '--egg-base',
                           str(tmp_path)], cwd=str(ROOT), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    info = tmp_path / 'gluonmine.egg-info'
    if done.returncode:
        return done.returncode, done.stdout, None, None
    requires = (info / 'requires.txt').read_text().split('\n\n')[0].split()
    version = [line for line in (info / 'PKG-INFO').read_text().splitlines()
               if line.startswith('Version: ')][0]
    return 0, done.stdout, requires, version[len('Version: '):]


def test_the_cpu_build_by_default_with_the_package_version(tmp_path):
    code, _, requires, version = egg_info(tmp_path)
    assert code == 0 and 'mxnet==1.9.1' in requires and 'numpy==1.23.5' in requires
    assert version == gluonmine.__version__


@pytest.mark.parametrize('value', ['', 'mxnet'])
def test_an_empty_or_plain_choice_is_the_cpu_build(tmp_path, value):
    assert egg_info(tmp_path, value)[2][0] == 'mxnet==1.9.1'


def test_a_cuda_build_replaces_the_cpu_one(tmp_path):
    # both install the package `mxnet`: requiring the CPU build beside a CUDA one would
    # install the CPU wheel over it
    code, _, requires, _ = egg_info(tmp_path, 'mxnet-cu112')
    assert code == 0 and 'mxnet-cu112==1.9.1' in requires
    assert not [line for line in requires if line.startswith('mxnet==')]


@pytest.mark.parametrize('value', ['tensorflow', 'mxnet-cu112; os_name == "nt"', 'mxnet==1.8'])
def test_anything_else_is_refused_by_name(tmp_path, value):
    code, output, _, _ = egg_info(tmp_path, value)
    assert code != 0 and 'GLUONMINE_MXNET' in output
