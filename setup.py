"""gluonmine: training-time sample selection for MXNet / GluonCV detectors."""
import os
import pathlib
import re

from setuptools import find_packages, setup

# The MXNet distribution: `mxnet` (CPU), or a CUDA build named by GLUONMINE_MXNET at
# install time, e.g. `GLUONMINE_MXNET=mxnet-cu112 pip install -e .`. Every build
# installs the same `mxnet` package, so requiring `mxnet` beside a CUDA build would
# install the CPU wheel over it.
MXNET = os.environ.get('GLUONMINE_MXNET') or 'mxnet'
if not re.fullmatch(r'mxnet(-cu\d+)?', MXNET):
    raise SystemExit('GLUONMINE_MXNET={!r}: expected mxnet or a CUDA build such as '
                     'mxnet-cu112'.format(MXNET))

# One dependency set known to install together on Python 3.11 without resolver
# backtracking: mxnet 1.9.1 needs numpy<1.24, so every package that GluonCV pulls
# in is pinned to its last release that still accepts NumPy 1.23.
INSTALL_REQUIRES = [
    MXNET + '==1.9.1',
    'numpy==1.23.5',
    'gluoncv==0.10.5.post0',
    'opencv-python==4.8.1.78',
    'pandas==2.0.3',
    'scipy==1.11.4',
    'matplotlib==3.7.5',
    'contourpy==1.3.2',
    # matplotlib 3.7 parses fonts and mathtext with pyparsing's camelCase names, which
    # pyparsing 3.3 deprecates: a release that removes them would break every plot
    'pyparsing>=3.0,<3.4',
    'tqdm>=4.60',
]

# `--dataset coco` in the recipes reads COCO through pycocotools (its wheel accepts NumPy 1.23).
COCO_REQUIRES = [
    'pycocotools==2.0.11',
]

TEST_REQUIRES = [
    'pytest>=7.0',
    'hypothesis>=6.80',
] + COCO_REQUIRES

HERE = pathlib.Path(__file__).parent
README = HERE / 'README.md'
# the version lives in the package (gluonmine.__version__); read, not imported, since
# the dependencies are not installed yet
VERSION = re.search(r"^__version__ = '([^']+)'", (HERE / 'gluonmine' / '__init__.py').read_text(),
                    re.M).group(1)

setup(
    name='gluonmine',
    version=VERSION,
    description='GPU-resident target sampling and hard example mining for GluonCV detectors',
    long_description=README.read_text() if README.exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['gluonmine', 'gluonmine.*']),
    python_requires='>=3.8',
    install_requires=INSTALL_REQUIRES,
    extras_require={'coco': COCO_REQUIRES, 'test': TEST_REQUIRES},
    license='Apache-2.0',
)
