"""A training run's checkpoint: what continuing it after an interruption needs.

After every epoch a recipe writes ``PREFIX.ckpt`` (one per worker, next to its
other outputs) and refreshes ``PREFIX.params``. The checkpoint is a pickle of
plain data (no class of ours, so a run started as a script resumes under an
import and back):

- ``params``: the bytes of ``net.save_parameters``;
- ``states``: the bytes of ``trainer.save_states`` (momentum, the optimizer's
  update count, hence the learning-rate schedule), or None with a ``dist_*``
  kvstore, whose optimizer runs on the servers;
- whatever the caller adds (the epoch, its report, the generators' states).

Each file is written under a temporary name and renamed (``entry.write_whole``
for the checkpoint), so an interruption at any moment leaves the previous
epoch's checkpoint whole.
"""
import os
import pickle
import tempfile

import entry

#: Bumped when the checkpoint's layout changes; older checkpoints are refused.
VERSION = 1


def save(path, net, trainer, params_path, **state):
    """Write the checkpoint ``path``, then put the same parameters at ``params_path``.

    ``trainer`` is None when its states cannot be saved (a ``dist_*`` kvstore).
    ``state``: picklable plain data, kept as is.
    """
    with tempfile.TemporaryDirectory(dir=_folder(path)) as tmp:
        params = os.path.join(tmp, 'params')
        net.save_parameters(params)
        state['params'] = _read(params)
        state['states'] = None
        if trainer is not None:
            trainer.save_states(os.path.join(tmp, 'states'))
            state['states'] = _read(os.path.join(tmp, 'states'))
        state['version'] = VERSION
        entry.write_whole(path, lambda scratch: _dump(state, scratch))
        os.replace(params, params_path)


def load(path):
    """The dict :func:`save` wrote; SystemExit naming the file when it is not a checkpoint."""
    if not os.path.isfile(path):
        raise SystemExit('--resume: there is no checkpoint {} (a run writes it after each '
                         'epoch; check --save-prefix)'.format(path))
    try:
        with open(path, 'rb') as f:
            state = pickle.load(f)
    except Exception as err:  # pylint: disable=broad-except
        raise SystemExit('--resume: cannot read the checkpoint {}: {}'.format(path, err))
    if not isinstance(state, dict) or state.get('version') != VERSION:
        raise SystemExit('--resume: {} is not a checkpoint of this version of the recipes'
                         .format(path))
    return state


def restore(state, net, trainer, ctx):
    """Put a checkpoint's parameters into ``net`` (on ``ctx``) and its states into ``trainer``.

    ``trainer`` may be None (states not restored). Returns whether states were restored.
    """
    with tempfile.TemporaryDirectory() as tmp:
        params, states = os.path.join(tmp, 'params'), os.path.join(tmp, 'states')
        _write(params, state['params'])
        load_parameters(net, params, ctx)
        if trainer is None or state['states'] is None:
            return False
        _write(states, state['states'])
        trainer.load_states(states)
        return True


def load_parameters(net, path, ctx):
    """Load a recipe's saved parameters (``net.save_parameters``) into a freshly built net.

    Extra parameters are ignored: children a net makes on first use in
    training (GluonCV's FasterRCNN's target generator, constants only) are
    saved with it but not there yet.
    """
    net.load_parameters(path, ctx=ctx, ignore_extra=True)


def _folder(path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return folder


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def _dump(state, path):
    with open(path, 'wb') as f:
        pickle.dump(state, f, protocol=4)
