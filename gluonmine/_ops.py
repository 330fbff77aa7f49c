"""Row-wise primitives that every sampler and miner in gluonmine is built from.

Shape shorthand: B images (rows), N candidates, M ground truths, K a top-k
size. Every function takes the operator namespace ``F`` (``mx.nd`` or
``mx.sym``) first, uses only operators that MXNet implements on CPU and GPU,
never reads a value back to the host and never writes into its inputs.

Operator choices are measured, not guessed (MXNet 1.9.1, 2 CPU cores, 2.9M
float32 elements, inside hybridized graphs):

- "any" over the short M axis is a compare plus a matrix product with a ones
  vector (about 2.6 ms), where ``max``/``argmax`` over that axis cost 19-21 ms
  and max ``Pooling`` in NCHW (MKLDNN) as much; so labels are decided by
  counting, and an ``argmax`` runs only where a caller needs every match;
- the maximum over the long N axis is NHWC max ``Pooling`` (2.6 ms, MXNet's
  own kernel; it compares with ``>``, so NaN never wins);
- per-row quotas use ``topk`` with a static K and a scatter of the chosen
  indices (``contrib.index_copy``), not a full sort of N; MXNet's CPU ``topk``
  switches from a partial to a full sort of the row when 8 K exceeds its
  length, so rows are padded to at least 8 K with -inf (which costs almost
  nothing in the partial sort);
- ``topk`` orders equal keys arbitrarily: where "lower index first" matters,
  :func:`rank_mask`, :func:`count_mask` and :func:`stable_order` repair it.
"""
# pylint: disable=invalid-name
INF = float('inf')
#: Static top-k of :func:`count_mask`; larger per-row counts fall back to a full sort.
FAST_K = 256


# ---------------------------------------------------------------- elementwise helpers

def full_like(F, x, value):
    """An array of x's shape, dtype and device filled with ``value`` (any shape).

    ``ones_like(x) * value``, but +inf is made as ``-(ones_like(x) * -inf)``:
    MXNet 1.9.1 reads a scalar argument of +inf as out of range whenever the
    calling thread's errno was left at ERANGE by earlier C code (dmlc's
    ``stod`` tests errno without clearing it), eagerly, when a graph is built
    and when an exported one is loaded; -inf and NaN read correctly.
    """
    if value == INF:
        return -(F.ones_like(x) * -INF)
    return F.ones_like(x) * value


def at_least(F, x, value):
    """1 where x >= ``value``, a scalar (any shape -> x's shape, in {0, 1}).

    ``x >= value``, but against +inf as ``-x <= -inf``, the same for every x
    (NaN included), since MXNet may misread a scalar +inf (:func:`full_like`).
    """
    if value == INF:
        return -x <= -INF
    return x >= value


def finite(F, x):
    """1 where x is a finite number, 0 for NaN and +-inf (any shape)."""
    return (x - x) == 0                                                     # inf - inf is NaN


def finite_rows(F, x):
    """1 where every entry of a row's last axis is finite: (B, N, D) -> (B, N)."""
    return 1 - row_any(F, 1 - finite(F, x))                                 # (B, N)


def mask_invalid(F, keys, valid):
    """Keys of valid entries, -inf elsewhere; NaN keys count as invalid. (B, N) -> (B, N)."""
    valid = valid * (keys == keys)                                          # NaN != NaN
    return F.where(valid, keys, full_like(F, keys, -INF))                   # (B, N)


def column_index(F, x):
    """The column index of every entry: x (B, N) -> (B, N) float32 0..N-1 in each row."""
    return F.broadcast_like(F.reshape(F.contrib.arange_like(x, axis=1), shape=(1, -1)), x)


def pad_columns(F, x, k, value):
    """Append k entries of ``value`` along axis 1: (B, N, ...) -> (B, N + k, ...)."""
    first = F.slice_axis(x, axis=1, begin=0, end=1)                         # (B, 1, ...)
    pad = full_like(F, F.broadcast_axis(first, axis=1, size=k), value)      # (B, k, ...)
    return F.concat(x, pad, dim=1)                                          # (B, N + k, ...)


def spread(F, x, d):
    """Repeat each entry d times along a new last axis.

    x: (B, N) -> (B, N, d). An outer product with a ones row: on CPU it runs
    2-3x faster than ``broadcast_axis``, ``repeat`` or ``tile``.
    """
    corner = F.slice(x, begin=(0, 0), end=(1, 1))                           # (1, 1)
    ones = F.broadcast_axis(F.ones_like(corner), axis=1, size=d)            # (1, d)
    flat = F.dot(F.reshape(x, shape=(-1, 1)), ones)                         # (B * N, d)
    return F.reshape_like(flat, x, lhs_begin=0, lhs_end=1, rhs_begin=0, rhs_end=2)  # (B, N, d)


# ---------------------------------------------------------------- reductions

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
    axis that MXNet offers on CPU and GPU. ``linalg.gemm2``, although
    ``FullyConnected`` is 1-4% faster: mixed precision (``amp.init()``, as
    GluonCV's ``--amp`` scripts call it) casts ``FullyConnected`` to float16,
    which MXNet's CPU cannot run, and data transforms run on CPU.
    """
    ones = F.ones_like(F.slice(mask, begin=(0, 0, 0), end=(1, 1, None)))    # (1, 1, M)
    counts = F.linalg.gemm2(F.reshape(mask, shape=(-3, 0)),
                            F.reshape(ones, shape=(-1, 1)))                 # (B * N, 1)
    counts = F.reshape_like(counts, mask, lhs_begin=0, lhs_end=1,
                            rhs_begin=0, rhs_end=2)                         # (B, N, 1)
    return F.reshape(counts, shape=(0, 0)) > 0                              # (B, N)


def row_sum(F, x):
    """Sum over the last axis, kept as a column.

    x: (B, N) -> (B, 1). Exact for 0/1 masks with fewer than 2**24 ones a row.
    """
    ones = F.reshape(F.ones_like(F.slice_axis(x, axis=0, begin=0, end=1)), shape=(-1, 1))  # (N, 1)
    return F.dot(x, ones)                                                   # (B, 1)


def masked_argmax(F, x, valid):
    """Index and value of the largest valid entry of each row.

    x, valid: (B, N, M) -> ``(index, value)``, both (B, N): the lowest index
    among equal maxima (``argmax`` keeps the first maximum it meets), and 0 with
    value -inf where a row has no valid entry. NaN in an invalid entry is
    harmless: invalid entries are replaced before the search.
    """
    keys = F.where(valid, x, full_like(F, x, -INF))                         # (B, N, M)
    index = F.argmax(keys, axis=-1)                                         # (B, N)
    return index, F.pick(keys, index, axis=-1)                              # (B, N) each


# ---------------------------------------------------------------- gather and scatter

def gather_rows(F, x, index, image_axis=0, fill=None):
    """The entries of each image's candidates at the given indices.

    x: (B, L, ...) (or (L, B, ...) with ``image_axis=1``); index: (B, K) of
    any dtype -> (B, K, ...). Indices outside [0, L) are clipped (the padding
    picks of :func:`top_entries`), or with ``fill`` given, index -1 gives
    ``fill``.
    """
    at = F.cast(index, dtype='float32')                                     # (B, K), exact < 2**24
    images = F.broadcast_like(F.reshape(F.contrib.arange_like(at, axis=0), shape=(-1, 1)), at)
    last = F.cast(_axis_size(F, x, 1 - image_axis), dtype='float32') - 1   # (1, 1) = L - 1
    at = F.broadcast_minimum(F.maximum(at, 0), last)                        # (B, K) in [0, L)
    coords = F.stack(*((images, at) if image_axis == 0 else (at, images)), axis=0)  # (2, B, K)
    picked = F.gather_nd(x, coords)                                         # (B, K, ...)
    if fill is None:
        return picked
    flat = F.reshape(picked, shape=(0, 0, -1))                              # (B, K, D)
    taken = F.broadcast_like(F.expand_dims(index >= 0, axis=-1), flat)      # (B, K, D)
    return F.reshape_like(F.where(taken, flat, full_like(F, flat, fill)), picked)


def _axis_size(F, x, axis):
    """The length of one axis of x, as a (1, 1) int64 array (``shape_array``'s dtype)."""
    size = F.slice_axis(F.shape_array(x), axis=0, begin=axis, end=axis + 1)  # (1,)
    return F.reshape(size, shape=(1, 1))


def _flat_index(F, index, like):
    """``b * L + index[b, k]``: index (B, K) into rows of like (B, L, ...) -> (B, K) int64."""
    images = F.reshape(F.cast(F.contrib.arange_like(index, axis=0), dtype='int64'),
                       shape=(-1, 1))                                       # (B, 1)
    return F.broadcast_add(F.cast(index, dtype='int64'),
                           F.broadcast_mul(images, _axis_size(F, like, 1)))


def scatter_rows(F, values, index, base):
    """Write ``values[b, j]`` at column ``index[b, j]`` of row b of ``base``.

    values: (B, K, ...), index: (B, K), distinct within a row and in [0, L),
    base: (B, L, ...) -> (B, L, ...).
    """
    flat = F.contrib.index_copy(F.reshape(base, shape=(-3, -2)),
                                F.reshape(_flat_index(F, index, base), shape=(-1,)),
                                F.reshape(values, shape=(-3, -2)))          # (B * L, ...)
    return F.reshape_like(flat, base)                                       # (B, L, ...)


def scatter_top(F, values, index, take, like, width=1):
    """Put chosen values back at their candidates, zeros elsewhere.

    values: (B, K), or (B, K, width); index: (B, K) of any dtype, distinct and
    in [0, N) where ``take`` is 1, anything elsewhere (e.g. the padding picks
    of :func:`top_entries`); take: (B, K) in {0, 1}; like: (B, N), or (B, N,
    width) -> the shape of ``like``. Each image gets K spare rows after its N,
    where the values not taken go (one :func:`scatter_rows`), and the result
    is cut back to N rows. The padding and the cut run on 2-D views
    (B, rows * width): MXNet's CPU ``Concat`` is several times faster there
    than on (B, rows, width).
    """
    flat_like = F.reshape(like, shape=(0, -1))                              # (B, N * width)
    rows = F.zeros_like(F.concat(flat_like, F.reshape(values, shape=(0, -1)), dim=1))
    base = F.reshape(rows, shape=(0, -1) if width == 1 else (0, -1, width))  # (B, N + K, ...)
    spare = F.broadcast_add(F.cast(column_index(F, take), dtype='int64'),
                            _axis_size(F, like, 1))                         # (B, K) N + j
    at = F.where(take, F.cast(F.maximum(index, 0), dtype='int64'), spare)   # (B, K)
    out = F.reshape_like(scatter_rows(F, values, at, base), rows)           # (B, (N + K) * width)
    return F.reshape_like(F.slice_like(out, flat_like, axes=(1,)), like)


def index_mask(F, index, like):
    """A (B, N) 0/1 mask from lists of column indices.

    index: (B, K) column indices in [0, N), distinct within a row, -1 for none;
    like: (B, N) -> (B, N).
    """
    taken = index >= 0                                                      # (B, K)
    return scatter_top(F, taken, index, taken, like)                        # (B, N)


def compact(F, values, keep):
    """Move the kept entries of each row to its front, in order; -1 after them.

    values, keep: (B, K) -> (B, K). Works for any K (a full sort of K).
    """
    position = column_index(F, values)                                      # (B, K)
    key = F.where(keep, -position, full_like(F, position, -INF))            # earlier first
    sorted_key, order = F.topk(key, axis=1, k=0, ret_typ='both')            # (B, K) each
    return F.where(sorted_key > -INF, gather_rows(F, values, order), F.ones_like(values) * -1)


# ---------------------------------------------------------------- top-k, ranks, subsets

def _padded_topk(F, masked, k, ret_typ):
    """topk of the k largest, on rows padded with 7 k -inf so MXNet sorts partially."""
    return F.topk(pad_columns(F, masked, 7 * k, -INF), axis=1, k=k, ret_typ=ret_typ,
                  dtype='int64')


def top_entries(F, keys, valid, k, count=None):
    """Column indices of the valid entries of largest key, a per-row number of them.

    keys, valid: (B, N); k: static int >= 1; count: (B, 1) or None for k.
    Returns ``(index, take)``, both (B, k): ``index`` int64 in descending key
    order, ``take`` 1 for the first ``min(count[b], k, number of valid
    entries)`` of them and 0 after (their index is meaningless, possibly >= N).
    -inf and NaN keys count as invalid; ties at the cut fall in any order.
    """
    values, index = _padded_topk(F, mask_invalid(F, keys, valid), k, 'both')  # (B, k) each
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
    mask = scatter_top(F, take, index, take, keys)                          # (B, N)
    return mask, F.sum(take, axis=1, keepdims=True)                         # (B, N), (B, 1)


def mask_from_cut(F, masked, count, cut):
    """The first ``count`` valid entries of a stable descending sort, given its cut value.

    masked: (B, N) keys, -inf where invalid; count: (B, 1) integer-valued,
    >= 0; cut: (B, 1) the ``count``-th largest valid key, -inf when the row
    holds fewer valid entries (then every valid entry is kept). Keys above the
    cut are kept, keys equal to it in column order until the row holds
    ``count`` (a cumulative sum). -inf keys are never above a cut, and a cut
    of -inf is replaced by NaN, which equals nothing. Returns (B, N) in {0, 1}.
    """
    above = F.broadcast_greater(masked, cut)                                # (B, N)
    cut = F.where(cut > -INF, cut, full_like(F, cut, float('nan')))         # (B, 1)
    tied = F.broadcast_equal(masked, cut)                                   # (B, N)
    room = count - row_sum(F, above)                                        # (B, 1)
    tied_rank = F.cumsum(tied, axis=1)                                      # (B, N), 1-based
    return above + tied * F.broadcast_lesser_equal(tied_rank, room)         # (B, N)


def ranked_entry(F, ranked, at):
    """Entry ``at`` of each row of a top-k result: ``ranked[b, at[b]]``.

    ranked: (B, K) non-increasing along each row (``topk`` values); at: (B,)
    integer-valued, >= 0 (from K on, the last entry). Returns (B,): the
    smallest of the first ``at + 1`` entries, not a ``pick``, which MXNet's
    mixed-precision pass (``amp.convert_hybrid_block``) cannot type after a
    ``topk``.
    """
    within = F.broadcast_lesser_equal(column_index(F, ranked),
                                      F.reshape(at, shape=(-1, 1)))         # (B, K)
    return F.min(F.where(within, ranked, full_like(F, ranked, INF)), axis=1)  # (B,)


def rank_mask(F, keys, valid, k, count=None):
    """Like :func:`topk_mask`, but equal keys rank the lower index first.

    The cut is the ``count``-th largest valid key, from one top-k of K=k;
    :func:`mask_from_cut` does the rest. The result is exactly the first
    ``count`` entries of a stable descending sort of the valid keys.

    keys, valid: (B, N); k: static int >= 1; count: (B, 1) or None for k.
    Returns ``(mask, taken)`` as :func:`topk_mask`.
    """
    masked = mask_invalid(F, keys, valid)                                   # (B, N)
    top = _padded_topk(F, masked, k, 'value')                               # (B, k)
    if count is None:
        count = F.ones_like(F.slice_axis(keys, axis=1, begin=0, end=1)) * k # (B, 1)
    count = F.minimum(count, k)                                             # (B, 1)
    cut = ranked_entry(F, top, F.reshape(F.maximum(count - 1, 0), shape=(-1,)))  # (B,)
    mask = mask_from_cut(F, masked, count, F.reshape(cut, shape=(-1, 1)))   # (B, N)
    return mask, row_sum(F, mask)                                           # (B, N), (B, 1)


def count_mask(F, masked, count, fast_k=FAST_K):
    """Mark the ``count`` largest keys of each row, for any count.

    Like :func:`rank_mask` (exactly ``min(count, number valid)`` ones, equal
    keys lower index first) but ``count`` has no static bound: rows with
    ``count <= fast_k`` take their cut from one top-k of ``fast_k``, the others
    from a full sort, which runs on -inf (cheaply: 3 ms for 32 x 8732 on 2
    cores) in the rows that do not need it.

    masked: (B, N) keys, -inf where invalid (no NaN: see :func:`mask_invalid`);
    count: (B, 1) integer-valued, >= 0, or +inf. Returns (B, N) in {0, 1}.
    """
    fast = _padded_topk(F, masked, fast_k, 'value')                         # (B, fast_k)
    slow_rows = count > fast_k                                              # (B, 1)
    idle = F.where(slow_rows, F.zeros_like(count), full_like(F, count, -INF))  # (B, 1)
    slow = F.sort(F.broadcast_add(masked, idle), axis=1, is_ascend=False)   # (B, N)
    # at most N - 1: pick casts its index to a C int, and from 2**31 on (a huge
    # ratio's count) that wraps to a negative index, clipped to the first column
    last = F.cast(_axis_size(F, masked, 1), dtype='float32') - 1            # (1, 1) = N - 1
    at = F.reshape(F.broadcast_minimum(F.maximum(count - 1, 0), last), shape=(-1,))  # (B,)
    cut = F.where(F.reshape(slow_rows, shape=(-1,)), F.pick(slow, at, axis=1, mode='clip'),
                  ranked_entry(F, fast, at))                                # (B,)
    return mask_from_cut(F, masked, count, F.reshape(cut, shape=(-1, 1)))


def stable_order(F, keys, valid, k=None):
    """Columns of the valid entries in descending key order, equal keys lower index first.

    keys, valid: (B, N); -inf and NaN keys count as invalid; k: static int >= 1
    (the first k) or None (all N). Returns (B, K) float32 column indices, K = k
    or N, -1 after the last valid entry.

    ``topk`` orders equal keys arbitrarily, so the order is repaired: the
    exact set comes from :func:`rank_mask`, and a second sort of the K
    results by (tie group, column) puts each run of equal keys in column order.
    """
    masked = mask_invalid(F, keys, valid)                                   # (B, N)
    if k is not None:
        chosen, _ = rank_mask(F, masked, masked > -INF, k)                  # (B, N)
        masked = pad_columns(F, mask_invalid(F, masked, chosen), k, -INF)   # (B, N + k)
    values, index = F.topk(masked, axis=1, k=0 if k is None else k, ret_typ='both')  # (B, K)
    previous = F.slice_like(F.concat(F.slice_axis(values, axis=1, begin=0, end=1), values,
                                     dim=1), values, axes=(1,))             # (B, K) shifted
    group = F.cumsum(values != previous, axis=1)                            # (B, K) tie runs
    order_key = F.cast(group, dtype='float64') * 2 ** 25 + F.cast(index, dtype='float64')
    order = F.argsort(order_key, axis=1, is_ascend=True)                    # (B, K) exact
    return F.where(values > -INF, gather_rows(F, index, order), F.ones_like(values) * -1)


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
