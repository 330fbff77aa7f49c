"""Greedy non-maximum suppression of each image's candidates, on device.

Shape shorthand: B images (rows), N candidates, K a static number kept. Like
:mod:`gluonmine._ops`, functions take ``F`` first, use only operators MXNet
implements on CPU and GPU and never read back to the host.

Measured on MXNet 1.9.1, 2 CPU cores: ``contrib.box_nms`` sorts its valid rows
with a stable sort (``SortByKey``: ``std::stable_sort`` on CPU, a radix sort
on GPU), so equal scores keep their input order: the lower index first. Its
cost is one kernel launch per row it visits, ``topk`` of them: 17 ms for
2 x 2000 boxes with ``topk=-1``, 0.6 ms with ``topk=256``, 0.06 ms when no row
is valid. So :func:`greedy_nms` visits a short prefix first and the whole row
only for images that need it.
"""
# pylint: disable=invalid-name
from . import _ops
from ._ops import INF

# box_nms drops rows whose class id equals ``background_id``; no float32 value
# converts to this int (float32 rounds it to -2**31), so no label is dropped.
_NO_BACKGROUND = -2 ** 31 + 1
#: greedy_nms first visits the candidates ranked below NMS_PREFIX * k.
NMS_PREFIX = 2


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
    extra = [_ops.column_index(F, scores)] + list(carry) + ([] if labels is None else [labels])
    planes = _planes(F, scores, boxes, extra)                               # (5 + E, B, N)
    id_index = -1 if labels is None else 4 + len(extra)
    if k is None:
        kept = _box_nms(F, _rows(F, planes), threshold, -1, id_index)       # (B, N, W)
    else:
        kept = _nms_in_stages(F, planes, scores, threshold, k, id_index)    # (B, N, W)
    columns = F.split(kept, axis=2, num_outputs=5 + len(extra), squeeze_axis=True)
    wanted = [columns[5], columns[0]] + [columns[6 + i] for i in range(len(carry))]
    if k is None:
        return wanted                                                       # (B, N) each
    stacked = F.concat(*wanted, dim=0)                                      # (C * B, N)
    first = F.slice_axis(_ops.pad_columns(F, stacked, k, -1.), axis=1, begin=0, end=k)
    parts = F.split(F.reshape(first, shape=(-4, len(wanted), -1, 0)), axis=0,
                    num_outputs=len(wanted), squeeze_axis=True)             # (B, k) each
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
    blank = F.where(need, scores, _ops.full_like(F, scores, -INF))          # (B, N)
    rest = F.slice_axis(planes, axis=0, begin=1, end=None)                  # (W - 1, B, N)
    again = _rows(F, F.concat(F.expand_dims(blank, axis=0), rest, dim=0))   # (B, N, W)
    return F.where(need, _box_nms(F, again, threshold, -1, id_index), kept) # (B, N, W)
