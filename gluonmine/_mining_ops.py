"""Row-wise primitives of the hard example miners, on top of :mod:`gluonmine._ops`.

Shape shorthand: B images (rows), N candidates, K a static output size.
Like ``_ops``, every function takes the operator namespace ``F`` first, uses
only operators MXNet implements on CPU and GPU, never reads a value back to
the host and never writes into its inputs. (These belong in ``_ops.py``; they
live here until that module is free to change.)

Measured on MXNet 1.9.1, 2 CPU cores:

- ``contrib.box_nms`` sorts its valid rows with a stable sort (``SortByKey``:
  ``std::stable_sort`` on CPU, a radix sort on GPU), so equal scores keep
  their input order: the lower index first. Its cost is one kernel launch per
  row it visits, ``topk`` of them: 17 ms for 2 x 2000 boxes with
  ``topk=-1``, 0.6 ms with ``topk=256``, 0.06 ms when no row is valid. So
  :func:`greedy_nms` visits a short prefix first and the whole row only for
  images that need it (see there).
- ``topk`` with a static K is a partial sort (fast for small K); a full sort
  of (32, 8732) costs 25 ms, and 3 ms when every entry is -inf.
"""
# pylint: disable=invalid-name
from . import _ops

INF = _ops.INF
# box_nms drops rows whose class id equals ``background_id``; no float32 value
# converts to this int (float32 rounds it to -2**31), so no label is dropped.
_NO_BACKGROUND = -2 ** 31 + 1
# greedy_nms first visits the candidates ranked below NMS_PREFIX * k.
NMS_PREFIX = 2
# Static top-k of count_mask; larger per-row counts fall back to a full sort.
FAST_K = 256


def finite(F, x):
    """1 where x is a finite number, 0 for NaN and +-inf. (B, N) -> (B, N)."""
    return (x - x) == 0                                                     # inf - inf is NaN


def finite_rows(F, x):
    """1 where every entry of a row's last axis is finite: (B, N, D) -> (B, N)."""
    return 1 - _ops.row_any(F, 1 - finite(F, x))                            # (B, N)


def mask_invalid(F, keys, valid):
    """Keys of valid entries, -inf elsewhere; NaN keys count as invalid. (B, N) -> (B, N)."""
    valid = valid * (keys == keys)                                          # NaN != NaN
    return F.where(valid, keys, F.ones_like(keys) * -INF)                   # (B, N)


def column_index(F, x):
    """The column index of every entry: x (B, N) -> (B, N) float32 0..N-1 in each row."""
    return F.broadcast_like(F.reshape(F.contrib.arange_like(x, axis=1), shape=(1, -1)), x)


def _box_nms(F, data, threshold, topk, id_index):
    """One contrib.box_nms on rows [score, x1, y1, x2, y2, ...]; id_index -1: no labels."""
    return F.contrib.box_nms(
        data, overlap_thresh=threshold, valid_thresh=-INF, topk=topk, coord_start=1,
        score_index=0, id_index=id_index, force_suppress=id_index < 0,
        background_id=_NO_BACKGROUND, in_format='corner', out_format='corner')  # (B, N, W)


def greedy_nms(F, scores, boxes, threshold, k=None, carry=(), labels=None):
    """Greedy non-maximum suppression of each row, kept candidates in score order.

    Candidates are visited in descending score order, equal scores lower index
    first (box_nms sorts stably); one is kept unless its IoU with an already
    kept candidate is ``> threshold`` (with ``labels``: an already kept
    candidate of the same label). Scores of -inf or NaN mark non-candidates:
    never kept, they suppress nothing. The first ``k`` kept candidates are
    exactly those of a greedy pass that stops after ``k`` keeps.

    Speed: box_nms costs one kernel launch per row it visits. With a static k,
    the candidates ranked below ``NMS_PREFIX * k`` are visited first; an image
    whose prefix keeps fewer than k while holding more candidates is visited
    again in full, by a second box_nms in which the other images hold no
    candidate (an empty call returns at once). The result is exact either way.

    scores: (B, N); boxes: (B, N, 4) corners; threshold: float;
    k: static int >= 1 or None (no limit); carry: (B, N) arrays to report for
    the kept candidates; labels: (B, N) integer class ids or None.
    Returns ``[index, score, *carry]``, each (B, K) with K = k or N: the
    float32 column index of the kept candidates in order, their score and
    carried values; every entry is -1 after the last kept candidate.
    """
    extra = [column_index(F, scores)] + list(carry) + ([] if labels is None else [labels])
    planes = _planes(F, scores, boxes, extra)                               # (5 + E, B, N)
    id_index = -1 if labels is None else 4 + len(extra)
    if k is None:
        kept = _box_nms(F, _rows(F, planes), threshold, -1, id_index)       # (B, N, W)
    else:
        kept = _nms_in_stages(F, planes, scores, threshold, k, id_index)   # (B, N, W)
    columns = F.split(kept, axis=2, num_outputs=5 + len(extra), squeeze_axis=True)
    wanted = [columns[5], columns[0]] + [columns[6 + i] for i in range(len(carry))]
    if k is None:
        return wanted                                                       # (B, N) each
    stacked = F.concat(*wanted, dim=0)                                      # (C * B, N)
    first = F.slice_axis(_ops.pad_columns(F, stacked, k, -1.), axis=1, begin=0, end=k)
    parts = F.split(F.reshape(first, shape=(-4, len(wanted), -1, 0)), axis=0,
                    num_outputs=len(wanted), squeeze_axis=True)              # (B, k) each
    return list(parts) if len(wanted) > 1 else [parts]


def _planes(F, scores, boxes, extra):
    """The box_nms columns [score, x1, y1, x2, y2, *extra] as planes: (5 + E, B, N)."""
    planes = [F.expand_dims(scores, axis=0), F.transpose(boxes, axes=(2, 0, 1))]
    planes += [F.expand_dims(x, axis=0) for x in extra]                     # (1, B, N) each
    return F.concat(*planes, dim=0)                                         # (W, B, N)


def _rows(F, planes):
    """Planes (W, B, N) -> box_nms rows (B, N, W).

    Concatenating along axis 0 and transposing once is ten times cheaper on
    CPU than a concat along the last axis of a 3-D array (MKLDNN's concat).
    """
    return F.transpose(planes, axes=(1, 2, 0))                              # (B, N, W)


def _nms_in_stages(F, planes, scores, threshold, k, id_index):
    """box_nms on the score-order prefix of NMS_PREFIX * k, then on whole rows if needed."""
    prefix = NMS_PREFIX * k
    kept = _box_nms(F, _rows(F, planes), threshold, prefix, id_index)       # (B, N, W)
    index = F.reshape(F.slice_axis(kept, axis=2, begin=5, end=6), shape=(0, 0))  # (B, N)
    found = _ops.row_sum(F, index >= 0)                                     # (B, 1)
    num_valid = _ops.row_sum(F, scores > -INF)                              # (B, 1); NaN: 0
    need = F.reshape((found < k) * (num_valid > prefix), shape=(-1,))       # (B,)
    blank = F.where(need, scores, F.ones_like(scores) * -INF)              # (B, N)
    rest = F.slice_axis(planes, axis=0, begin=1, end=None)                  # (W - 1, B, N)
    again = _rows(F, F.concat(F.expand_dims(blank, axis=0), rest, dim=0))   # (B, N, W)
    return F.where(need, _box_nms(F, again, threshold, -1, id_index), kept)  # (B, N, W)


def take_rows(F, x, index):
    """Entries of each row of x at the given columns: x (B, L), index (B, K) -> (B, K).

    index may be float32 or int; it must lie in [0, L).
    """
    rows = F.broadcast_like(F.reshape(F.contrib.arange_like(index, axis=0), shape=(-1, 1)),
                            index)                                          # (B, K)
    return F.gather_nd(x, F.stack(rows, F.cast(index, dtype='float32'), axis=0))  # (B, K)


def stable_order(F, keys, valid, k=None):
    """Columns of the valid entries in descending key order, equal keys lower index first.

    keys, valid: (B, N); -inf and NaN keys count as invalid; k: static int >= 1
    (the first k) or None (all N). Returns (B, K) float32 column indices, K = k
    or N, -1 after the last valid entry.

    ``topk`` orders equal keys arbitrarily, so the order is repaired: the
    exact set comes from :func:`_ops.rank_mask`, and a second sort of the K
    results by (tie group, column) puts each run of equal keys in column order.
    """
    masked = mask_invalid(F, keys, valid)                                   # (B, N)
    if k is not None:
        chosen, _ = _ops.rank_mask(F, masked, masked > -INF, k)             # (B, N)
        masked = _ops.pad_columns(F, F.where(chosen, masked, F.ones_like(masked) * -INF),
                                  k, -INF)                                  # (B, N + k)
    values, index = F.topk(masked, axis=1, k=0 if k is None else k, ret_typ='both')  # (B, K)
    previous = F.slice_like(F.concat(F.slice_axis(values, axis=1, begin=0, end=1), values,
                                     dim=1), values, axes=(1,))             # (B, K) shifted
    group = F.cumsum(values != previous, axis=1)                            # (B, K) tie runs
    order_key = F.cast(group, dtype='float64') * 2 ** 25 + F.cast(index, dtype='float64')
    order = F.argsort(order_key, axis=1, is_ascend=True)                    # (B, K) exact
    return F.where(values > -INF, take_rows(F, index, order), F.ones_like(values) * -1)


def mask_from_cut(F, masked, count, cut):
    """The first ``count`` valid entries of a stable descending sort, given its cut value.

    masked: (B, N) keys, -inf where invalid; count: (B, 1) integer-valued;
    cut: (B, 1) the ``count``-th largest valid key, -inf when the row holds
    fewer valid entries (then every valid entry is kept). Keys above the cut
    are kept, keys equal to it in column order until the row holds ``count``.
    Returns (B, N) in {0, 1}. (The tail of :func:`_ops.rank_mask`, in fewer
    full-size passes: -inf keys are never above a cut, and a cut of -inf is
    replaced by NaN, which equals nothing.)
    """
    above = F.broadcast_greater(masked, cut)                                # (B, N)
    cut = F.where(cut > -INF, cut, F.ones_like(cut) * float('nan'))        # (B, 1)
    tied = F.broadcast_equal(masked, cut)                                   # (B, N)
    room = count - _ops.row_sum(F, above)                                   # (B, 1)
    tied_rank = F.cumsum(tied, axis=1)                                      # (B, N), 1-based
    return above + tied * F.broadcast_lesser_equal(tied_rank, room)         # (B, N)


def count_mask(F, masked, count, fast_k=FAST_K):
    """Mark the ``count`` largest keys in each row, for any count.

    Like :func:`_ops.rank_mask` (exactly ``min(count, number valid)`` ones,
    equal keys lower index first) but ``count`` is not bounded by a static k:
    rows with ``count <= fast_k`` take their cut from one top-k of ``fast_k``,
    other rows from a full sort, which runs on -inf (cheaply: 3 ms for
    32 x 8732 on 2 cores) in the rows that do not need it.

    masked: (B, N) keys, -inf where invalid (no NaN: see :func:`mask_invalid`);
    count: (B, 1) integer-valued, >= 0. Returns (B, N) in {0, 1}.
    """
    fast = F.topk(_ops.pad_columns(F, masked, fast_k, -INF), axis=1, k=fast_k,
                  ret_typ='value')                                          # (B, fast_k)
    slow_rows = count > fast_k                                              # (B, 1)
    idle = F.where(slow_rows, F.zeros_like(count), F.zeros_like(count) - INF)  # (B, 1)
    slow = F.sort(F.broadcast_add(masked, idle), axis=1, is_ascend=False)  # (B, N)
    at = F.reshape(F.maximum(count - 1, 0), shape=(-1,))                   # (B,)
    cut = F.where(F.reshape(slow_rows, shape=(-1,)), F.pick(slow, at, axis=1, mode='clip'),
                  F.pick(fast, at, axis=1, mode='clip'))                    # (B,)
    return mask_from_cut(F, masked, count, F.reshape(cut, shape=(-1, 1)))


def compact(F, values, keep):
    """Move the kept entries of each row to its front, in order; -1 after them.

    values, keep: (B, K) -> (B, K). Works for any K (a full sort of K).
    """
    position = column_index(F, values)                                      # (B, K)
    key = F.where(keep, -position, F.ones_like(position) * -INF)            # earlier first
    sorted_key, order = F.topk(key, axis=1, k=0, ret_typ='both')            # (B, K) each
    return F.where(sorted_key > -INF, take_rows(F, values, order), F.ones_like(values) * -1)


def index_mask(F, index, like):
    """A (B, N) 0/1 mask from lists of column indices.

    index: (B, K) float32 column indices in [0, N), distinct within a row, -1
    for none; like: (B, N). The scatter writes the -1 entries into K padding
    columns that are cut off afterwards, so every written position is distinct.
    """
    taken = index >= 0                                                      # (B, K)
    width = F.cast(F.slice_axis(F.shape_array(like), axis=0, begin=1, end=2), dtype='float32')
    spare = F.broadcast_add(column_index(F, index), F.reshape(width, shape=(1, 1)))  # (B, K)
    position = F.cast(F.where(taken, index, spare), dtype='int64')          # (B, K)
    base = F.zeros_like(F.concat(like, F.cast(index, dtype='float32'), dim=1))  # (B, N + K)
    mask = _ops.scatter_rows(F, taken, position, base)                      # (B, N + K)
    return F.slice_like(mask, like, axes=(1,))                              # (B, N)
