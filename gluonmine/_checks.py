"""Argument and input-shape checks shared by every public block.

Constructor arguments fail with ``ValueError`` naming the argument and the value;
inputs fail with ``ValueError`` naming the input, the shape expected and the
shape given. Shape checks run in ``forward`` on the NDArrays a caller passes,
so they hold eagerly and for hybridized blocks alike; nothing is read from the
device. Inputs of another dtype are read as float32 (:func:`as_float32`).
"""
import numbers

import numpy as np
from mxnet import ndarray, symbol


def check_number(name, value, low=None, high=None, low_open=False, high_open=False,
                 float32=False):
    """Return ``float(value)`` after checking it is a real number in the range.

    The range is ``[low, high]``; ``low_open``/``high_open`` exclude an end.
    With ``float32`` the value returned is the nearest float32, the value
    MXNet compares float32 data with (MXNet also rejects scalars such as
    denormal doubles that float32 cannot hold), and it must be in the range
    too: 1e39 is inf in float32, 1e-46 is 0.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise ValueError('{} must be a real number, got {!r}'.format(name, value))
    number = float(value)
    if float32:
        with np.errstate(over='ignore', under='ignore'):
            number = float(np.float32(value))
    if not (_within(value, low, high, low_open, high_open)
            and _within(number, low, high, low_open, high_open)):
        interval = '{}{}, {}{}'.format('(' if low_open else '[',
                                       '-inf' if low is None else low,
                                       'inf' if high is None else high,
                                       ')' if high_open else ']')
        got = repr(value) if number == value else '{!r} ({!r} in float32)'.format(value, number)
        raise ValueError('{} must be in {}, got {}'.format(name, interval, got))
    return number


def _within(value, low, high, low_open, high_open):
    """Whether value lies in the range ``[low, high]`` (``None``: unbounded; open ends)."""
    too_low = low is not None and (value < low or (low_open and value == low))
    too_high = high is not None and (value > high or (high_open and value == high))
    return not (too_low or too_high)


def check_int(name, value, low=0):
    """Return ``int(value)`` after checking it is an integer >= low."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError('{} must be an integer >= {}, got {!r}'.format(name, low, value))
    return int(value)


def check_order(low_name, low, high_name, high):
    """Check ``low <= high`` for two already checked numbers."""
    if low > high:
        raise ValueError('{} must be <= {}, got {!r} > {!r}'.format(
            low_name, high_name, low, high))


def check_choice(name, value, choices):
    """Check that value is one of choices."""
    if value not in choices:
        raise ValueError('{} must be one of {}, got {!r}'.format(
            name, ', '.join(repr(c) for c in choices), value))
    return value


def is_array(x):
    """True for an NDArray (a value whose shape can be checked), False for a Symbol."""
    return isinstance(x, ndarray.NDArray)


def as_float32(x):
    """An input as float32, the dtype every block computes in.

    float16 (mixed precision), float64 (``nd.from_numpy``) or integer arrays
    are cast on their own device (no host copy) instead of failing deep
    inside MXNet on a dtype mismatch; float32 arrays and other values pass
    unchanged. A Symbol (the block is a child of a hybridized block) gets an
    ``amp_cast`` to float32: its dtype is not known yet; on float32 the cast
    does nothing in place (a copy where the input is needed elsewhere), and
    float16 or bfloat16 from a mixed-precision graph would otherwise reach the
    index arithmetic (integers above 2048 are not exact in float16).
    """
    if is_array(x) and x.dtype != np.float32:
        return x.astype('float32')
    if isinstance(x, symbol.Symbol):
        return symbol.amp_cast(x, dtype='float32')
    return x


def check_shape(name, x, expected, last=None):
    """Check the rank (and optionally the last dimension) of an NDArray input.

    expected: a string such as ``'(B, N, M)'``; its number of axes is the rank
    required. ``last`` fixes the size of the last axis (4 for boxes). Only
    an axis named M (ground truths, see :func:`padding_if_empty`) may be
    empty: MXNet computes nothing on zero-size arrays.
    Symbols pass unchecked: their shapes are not known yet.
    """
    if not is_array(x):
        return
    axes = [axis.strip() for axis in expected.strip('()').split(',')]
    if x.ndim != len(axes) or (last is not None and x.shape[-1] != last):
        raise ValueError('{} must have shape {}, got {}'.format(name, expected, x.shape))
    empty = [axis for axis, size in zip(axes, x.shape) if size == 0 and axis != 'M']
    if empty:
        raise ValueError('{} must have shape {} with {} at least 1, got {}'.format(
            name, expected, ' and '.join(empty), x.shape))


def check_same(name, x, axis, other_name, other, other_axis):
    """Check that two NDArray inputs agree on the size of one axis each."""
    if not (is_array(x) and is_array(other)):
        return
    if x.shape[axis] != other.shape[other_axis]:
        raise ValueError('{} has shape {} and {} has shape {}: their axes {} and {} must '
                         'match'.format(name, x.shape, other_name, other.shape, axis, other_axis))


def check_same_leading(name, x, other_name, other, axes=2):
    """Check that two NDArray inputs agree on their first ``axes`` axes: (B, N, ...) and
    (B, N, ...) by default."""
    for axis in range(axes):
        check_same(name, x, axis, other_name, other, axis)


def as_list(x):
    """One array, or a list or tuple of them (one per device), as a list."""
    return list(x) if isinstance(x, (list, tuple)) else [x]


def padding_if_empty(x, axis=1, value=-1.):
    """One padding ground truth in place of a ground-truth axis of length 0.

    MXNet has no zero-size arrays in most operators, and a batch without any
    object is common. A padding ground truth gives the same labels (it
    overlaps nothing and forces nothing): boxes (B, 0, D) become (B, 1, D) of
    -1 (the defaults), IoUs (B, N, 0) become (B, N, 1) of 0 (``axis=2,
    value=0``). Symbols and non-empty arrays pass unchanged.
    """
    if not is_array(x) or x.ndim <= axis or x.shape[axis] > 0:
        return x
    shape = x.shape[:axis] + (1,) + x.shape[axis + 1:]
    return ndarray.full(shape, value, ctx=x.context, dtype=x.dtype)
