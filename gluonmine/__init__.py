"""gluonmine: training-time sample selection for MXNet / GluonCV detectors.

Target samplers that follow GluonCV's conventions, batched and on device, and
hard example miners. The public names below are the contract of
``shared/DESIGN.md``.
"""
from .hard_negative import HardNegativeMiner
from .ohem import HardExampleMiner, OHEMSampler
from .quota import QuotaSampler
from .rcnn_target import RCNNTargetSampler
from .rpn import RPNTargetGenerator, RPNTargetSampler

__version__ = '0.1.0'

__all__ = ['HardExampleMiner', 'HardNegativeMiner', 'OHEMSampler', 'QuotaSampler',
           'RCNNTargetSampler', 'RPNTargetGenerator', 'RPNTargetSampler', '__version__']
