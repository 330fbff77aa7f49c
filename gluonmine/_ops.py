"""Row-wise primitives that every sampler and miner in gluonmine is built from.

Shape shorthand: B images (rows), N candidates, M ground truths, K a static
top-k size. Every function takes the operator namespace ``F`` (``mx.nd`` or
``mx.sym``) first, uses only operators that MXNet implements on CPU and GPU,
never reads a value back to the host and never writes into its inputs.

Operator choices are measured, not guessed (MXNet 1.9.1, 2 CPU cores, 2.9M
float32 elements; ``python recipes/benchmark.py --only ops`` reprints them):

- "any" over the short M axis is a compare plus a matrix product with a ones
  vector (about 2.6 ms), where ``max``/``argmax`` over that axis cost 19-21 ms
  and max ``Pooling`` in NCHW (MKLDNN) as much; so labels are decided by
  counting, and an ``argmax`` runs only where a caller needs every match;
- the maximum over the long N axis is NHWC max ``Pooling`` (2.6 ms, MXNet's
  own kernel; it compares with ``>``, so NaN never wins);
- per-row quotas use ``topk`` with a static K and a scatter of the chosen
  indices (``contrib.index_copy``), never a full ``argsort`` of N.
"""

# pylint: disable=invalid-name
INF = float('inf')


def col_max(F, x):
    """Maximum over the middle axis.

    x: (B, N, M) -> (B, M). NaN entries are skipped (max pooling compares with
    ``>``); a column holding no number gives a large negative value (-3.4e38).
    """
    grid = F.reshape(x, shape=(0, 0, 1, -1))                                # (B, N, 1, M) as NHWC
    pooled = F.Pooling(grid, kernel=(1, 1), pool_type='max', global_pool=True,
                       layout='NHWC')                                       # (B, 1, 1, M)
    return F.reshape(pooled, shape=(0, -1))                                 # (B, M)


def first_axis_max(F, x):
    """Maximum over the first axis.

    x: (N, B, M) -> (B, M): the per-ground-truth best IoU of an anchor-major
    IoU matrix (NHWC max Pooling over N; NaN skipped, as :func:`col_max`).
    """
    flat = F.expand_dims(F.reshape(x, shape=(0, -1)), axis=0)               # (1, N, B * M)
    grid = F.expand_dims(flat, axis=2)                                      # (1, N, 1, B * M)
    pooled = F.Pooling(grid, kernel=(1, 1), pool_type='max', global_pool=True,
                       layout='NHWC')                                       # (1, 1, 1, B * M)
    return F.reshape_like(F.reshape(pooled, shape=(-1,)),
                          F.slice_axis(x, axis=0, begin=0, end=1)).reshape((-3, -2))  # (B, M)


def row_any(F, mask):
    """1 where a row of a 0/1 mask holds a one.

    mask: (B, N, M) in {0, 1} -> (B, N) in {0, 1}. A matrix product with a
    ones vector (exact for M < 2**24), the fastest reduction over a short last
    axis that MXNet offers on CPU and GPU.
    """
    ones = F.ones_like(F.slice(mask, begin=(0, 0, 0), end=(1, 1, None)))    # (1, 1, M)
    counts = F.FullyConnected(F.reshape(mask, shape=(-3, 0)), F.reshape(ones, shape=(1, -1)),
                              no_bias=True, num_hidden=1)                   # (B * N, 1)
    counts = F.reshape_like(counts, mask, lhs_begin=0, lhs_end=1,
                            rhs_begin=0, rhs_end=2)                         # (B, N, 1)
    return F.reshape(counts, shape=(0, 0)) > 0                              # (B, N)


def row_sum(F, x):
    """Sum over the last axis, kept as a column.

    x: (B, N) -> (B, 1). Exact for 0/1 masks with fewer than 2**24 ones a row.
    """
    ones = F.reshape(F.ones_like(F.slice_axis(x, axis=0, begin=0, end=1)), shape=(-1, 1))  # (N, 1)
    return F.dot(x, ones)                                                   # (B, 1)


def spread(F, x, d):
    """Repeat each entry d times along a new last axis.

    x: (B, N) -> (B, N, d). An outer product with a ones row: on CPU it runs
    2-3x faster than ``broadcast_axis``, ``repeat`` or ``tile``.
    """
    corner = F.slice(x, begin=(0, 0), end=(1, 1))                           # (1, 1)
    ones = F.broadcast_axis(F.ones_like(corner), axis=1, size=d)            # (1, d)
    flat = F.dot(F.reshape(x, shape=(-1, 1)), ones)                         # (B * N, d)
    return F.reshape_like(flat, x, lhs_begin=0, lhs_end=1, rhs_begin=0, rhs_end=2)  # (B, N, d)


def masked_argmax(F, x, valid):
    """Index and value of the largest valid entry of each row.

    x, valid: (B, N, M) -> ``(index, value)``, both (B, N): the lowest index
    among equal maxima (``argmax`` keeps the first maximum it meets), and 0 with
    value -inf where a row has no valid entry. NaN in an invalid entry is
    harmless: invalid entries are replaced before the search.
    """
    keys = F.where(valid, x, F.ones_like(x) * -INF)                         # (B, N, M)
    index = F.argmax(keys, axis=-1)                                         # (B, N)
    return index, F.pick(keys, index, axis=-1)                              # (B, N) each


def pad_columns(F, x, k, value):
    """Append k entries of ``value`` along axis 1, so that a top-k exists even when N < k.

    x: (B, N, ...) -> (B, N + k, ...).
    """
    first = F.slice_axis(x, axis=1, begin=0, end=1)                         # (B, 1, ...)
    pad = F.broadcast_axis(F.ones_like(first), axis=1, size=k) * value      # (B, k, ...)
    return F.concat(x, pad, dim=1)                                          # (B, N + k, ...)


def _mask_invalid(F, keys, valid):
    """Keys of valid entries, -inf elsewhere; NaN keys count as invalid. (B, N) -> (B, N)."""
    valid = valid * (keys == keys)                                          # NaN != NaN
    return F.where(valid, keys, F.ones_like(keys) * -INF)                   # (B, N)


def _flat_index(F, index, like, image_axis=0):
    """Positions of (image, index) pairs in the flattened leading two axes of ``like``.

    index: (B, K) int64 indices along the candidate axis of like, which is
    (B, L, ...) when ``image_axis`` is 0 and (L, B, ...) when it is 1
    -> (B * K,) int64: ``b * L + index`` or ``index * B + b``.
    """
    width = F.slice_axis(F.shape_array(like), axis=0, begin=1, end=2)      # (1,) int64
    images = F.reshape(F.cast(F.contrib.arange_like(index, axis=0), dtype='int64'),
                       shape=(-1, 1))                                       # (B, 1)
    width = F.reshape(width, shape=(1, 1))                                  # (1, 1)
    if image_axis == 0:
        flat = F.broadcast_add(index, F.broadcast_mul(images, width))      # (B, K)
    else:
        flat = F.broadcast_add(F.broadcast_mul(index, width), images)      # (B, K)
    return F.reshape(flat, shape=(-1,))                                     # (B * K,)


def gather_rows(F, x, index, k, image_axis=0):
    """Entries of each image's candidates at the given indices.

    x: (B, L, ...) (or (L, B, ...) with ``image_axis=1``), index: (B, k)
    int64 (out-of-range indices are clipped) -> (B, k, ...).
    """
    flat = F.take(F.reshape(x, shape=(-3, -2)), _flat_index(F, index, x, image_axis), axis=0,
                  mode='clip')                                              # (B * k, ...)
    return F.reshape(flat, shape=(-4, -1, k, -2))                           # (B, k, ...)


def scatter_rows(F, values, index, base):
    """Write ``values[b, j]`` at column ``index[b, j]`` of row b of ``base``.

    values: (B, K, ...), index: (B, K) int64, distinct within a row and < L,
    base: (B, L, ...) -> (B, L, ...).
    """
    flat = F.contrib.index_copy(F.reshape(base, shape=(-3, -2)), _flat_index(F, index, base),
                                F.reshape(values, shape=(-3, -2)))          # (B * L, ...)
    return F.reshape_like(flat, base)                                       # (B, L, ...)


def scatter_top(F, values, index, like, k):
    """Put values chosen by :func:`top_entries` back at their candidates.

    values: (B, k, ...) holding 0 wherever ``take`` is 0, index: (B, k) from
    ``top_entries(..., k)`` on a (B, N) key (so in [0, N + k)), like: (B, N,
    ...) -> (B, N, ...): ``values[b, j]`` at candidate ``index[b, j]``, 0
    elsewhere. The scatter writes into a flat buffer of B * (N + k) rows whose
    first B * N rows are the result; picks of the k padding columns (never
    taken) land in the rows after them, so the result is one contiguous prefix.
    """
    flat_like = F.reshape(like, shape=(-3, -2))                             # (B * N, ...)
    base = F.zeros_like(pad_columns(F, like, k, 0.))                        # (B, N + k, ...)
    base = F.reshape(base, shape=(-3, -2))                                  # (B * (N + k), ...)
    shape = F.shape_array(like)                                             # (ndim,) int64
    images = F.reshape(F.cast(F.contrib.arange_like(index, axis=0), dtype='int64'),
                       shape=(-1, 1))                                       # (B, 1)
    width = F.reshape(F.slice_axis(shape, axis=0, begin=1, end=2), shape=(1, 1))  # (1, 1) = N
    total = F.reshape(F.slice_axis(F.shape_array(flat_like), axis=0, begin=0, end=1),
                      shape=(1, 1))                                         # (1, 1) = B * N
    inside = F.broadcast_add(F.broadcast_mul(images, width), index)        # (B, k) b * N + i
    spare = F.broadcast_add(F.broadcast_add(total, images * k),
                            F.broadcast_sub(index, width))                  # (B, k) past B * N
    flat = F.where(F.broadcast_lesser(index, width), inside, spare)        # (B, k)
    out = F.contrib.index_copy(base, F.reshape(flat, shape=(-1,)),
                               F.reshape(values, shape=(-3, -2)))           # (B * (N + k), ...)
    return F.reshape_like(F.slice_like(out, flat_like, axes=(0,)), like)   # (B, N, ...)


def _static_count(F, keys, k):
    """A (B, 1) column holding the constant k."""
    return F.ones_like(F.slice_axis(keys, axis=1, begin=0, end=1)) * k     # (B, 1)


def top_entries(F, keys, valid, k, count=None):
    """Column indices of the valid entries of largest key, a per-row number of them.

    keys, valid: (B, N); k: static int >= 1; count: (B, 1) or None for k.
    Returns ``(index, take)``, both (B, k): ``index`` int64 in [0, N + k) in
    descending key order, ``take`` 1 for the first ``min(count[b], k, number
    of valid entries)`` of them and 0 after (their index is meaningless).
    -inf and NaN keys count as invalid; ties at the cut fall in any order.
    """
    padded = pad_columns(F, _mask_invalid(F, keys, valid), k, -INF)       # (B, N + k)
    values, index = F.topk(padded, axis=1, k=k, ret_typ='both', dtype='int64')  # (B, k) each
    take = values > -INF                                                    # (B, k)
    if count is not None:
        rank = F.reshape(F.contrib.arange_like(values, axis=1), shape=(1, -1))  # (1, k)
        take = take * F.broadcast_lesser(rank, count)                       # (B, k)
    return index, take


def topk_mask(F, keys, valid, k, count=None):
    """Mark the valid entries of largest key, a per-row number of them.

    Each row b gets exactly ``min(count[b], k, number of valid entries)`` ones
    (-inf and NaN keys count as invalid). Among equal keys at the cut, which
    ones are kept is unspecified: use :func:`rank_mask` when it must be the
    lowest indices. Cost: one top-k of K=k and a scatter, not a sort of N.

    keys, valid: (B, N); k: static int >= 1; count: (B, 1) or None for k.
    Returns ``(mask, taken)``: mask (B, N) in {0, 1}, taken (B, 1) its row sums.
    """
    index, take = top_entries(F, keys, valid, k, count)                     # (B, k) each
    mask = scatter_top(F, take, index, keys, k)                             # (B, N)
    return mask, F.sum(take, axis=1, keepdims=True)                         # (B, N), (B, 1)


def rank_mask(F, keys, valid, k, count=None):
    """Like :func:`topk_mask`, but equal keys rank the lower index first.

    The cut value is the ``count``-th largest key (one top-k of K=k); entries
    above it are kept, and entries equal to it are kept in index order until the
    row holds ``count`` (a cumulative sum). So the result is exactly the first
    ``count`` entries of a stable descending sort of the valid keys.

    keys, valid: (B, N); k: static int >= 1; count: (B, 1) or None for k.
    Returns ``(mask, taken)`` as :func:`topk_mask`.
    """
    masked = _mask_invalid(F, keys, valid)                                  # (B, N)
    valid = masked > -INF                                                   # (B, N)
    top = F.topk(pad_columns(F, masked, k, -INF), axis=1, k=k, ret_typ='value')  # (B, k)
    count = _static_count(F, keys, k) if count is None else F.minimum(count, k)  # (B, 1)
    cut_at = F.reshape(F.clip(count - 1, 0, k - 1), shape=(-1,))            # (B,)
    cut = F.reshape(F.pick(top, cut_at, axis=1), shape=(-1, 1))             # (B, 1)
    above = F.broadcast_greater(masked, cut) * valid                        # (B, N)
    tied = F.broadcast_equal(masked, cut) * valid                           # (B, N)
    room = count - row_sum(F, above)                                        # (B, 1)
    tied_rank = F.cumsum(tied, axis=1)                                      # (B, N), 1-based
    mask = (above + tied * F.broadcast_lesser_equal(tied_rank, room))       # (B, N)
    mask = F.broadcast_mul(mask, count > 0)                                 # (B, N)
    return mask, row_sum(F, mask)                                           # (B, N), (B, 1)


def random_subset(F, eligible, k, count=None, keys=None):
    """A uniformly random subset of each row's eligible entries.

    Each row b gets exactly ``min(count[b], k, number eligible)`` entries, drawn
    without replacement with equal probability (random keys from ``F.random``,
    governed by ``mx.random.seed``, then :func:`topk_mask`).

    eligible: (B, N) in {0, 1}; k: static int >= 1; count: (B, 1) or None for
    k; keys: optional (B, N) uniform draws to reuse for disjoint subsets.
    Returns ``(mask, taken)`` as :func:`topk_mask`.
    """
    if keys is None:
        keys = F.random.uniform_like(eligible)                              # (B, N)
    return topk_mask(F, keys, eligible, k, count)
