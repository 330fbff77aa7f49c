"""The base classes of every public gluonmine block."""
from mxnet import autograd, gluon

from ._checks import as_float32


class CopyableBlock(gluon.HybridBlock):
    """A HybridBlock that pickles and deep-copies after it has run hybridized.

    Its built graph holds MXNet handles, which cannot be pickled (a DataLoader
    whose workers are spawned pickles its dataset's transform); the copy
    leaves the graph behind and builds its own at its first call.
    """

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_cached_graph=(), _cached_op=None, _cached_op_args=[])
        return state


class SelectionBlock(CopyableBlock):
    """A HybridBlock that selects: it checks its inputs and never records gradients.

    Which candidates are sampled or mined is not differentiable, so the forward
    pass runs with autograd paused (in training mode if the caller is): outputs
    are constants to the surrounding graph, even when their inputs carry
    gradients (and some index operators MXNet uses here have no gradient at
    all). Subclasses override :meth:`check_inputs` to validate NDArray shapes;
    it runs on every call, eager or hybridized, and may return adjusted inputs.
    NDArray inputs of another dtype than float32 are cast first.
    """

    def check_inputs(self, *args):
        """Validate (and possibly adjust) the NDArray inputs; returns them."""
        return args

    def forward(self, *args):  # pylint: disable=arguments-differ
        with autograd.pause(train_mode=autograd.is_training()):
            args = self.check_inputs(*[as_float32(x) for x in args])
            return super(SelectionBlock, self).forward(*args)
