"""Box geometry on batches: pairwise IoU, the image-border rule, box encoding.

Shape shorthand: B images, N candidates (anchors or RoIs), M ground truths.
Boxes are corner format (x1, y1, x2, y2); padding ground truths are rows of -1
and have IoU 0 with every box. Functions take the operator namespace ``F``.
"""
# pylint: disable=invalid-name
from . import _ops


def _corners(F, boxes):
    """Split (..., 4) corner boxes into four (..., 1) coordinate tensors."""
    return F.split(boxes, num_outputs=4, axis=-1)


def pairwise_iou(F, boxes, gt_boxes, shared):
    """IoU of every box with every ground truth of the same image, box-major.

    boxes: (N, 4) shared by all images when ``shared``, else (B, N, 4);
    gt_boxes: (B, M, 4) -> (N, B, M). A pair that does not overlap, or a
    degenerate box, has IoU 0 (the convention of ``contrib.box_iou``).

    Shared boxes go through one fused ``contrib.box_iou`` call, (N, 4) x
    (B, M, 4) -> (N, B, M): that is why the result is box-major. Per-image
    boxes cannot use it without computing B times the pairs, so they use
    broadcast arithmetic (then one transpose).
    """
    if shared:
        return F.contrib.box_iou(boxes, gt_boxes, format='corner')          # (N, B, M)
    return F.transpose(batched_iou(F, boxes, gt_boxes), axes=(1, 0, 2))    # (N, B, M)


def join_levels(F, levels):
    """Anchors of several feature levels as one set, in level order.

    levels: a list of (N_l, 4), or of (1 or B, N_l, 4) -> (N, 4) or (1 or B, N, 4),
    N the sum of the N_l. GluonCV's FPN RPN returns its ``anchors`` as such a
    list and concatenates its ``raw_rpn_score`` over levels in the same order.
    """
    return F.concat(*levels, dim=-2)


def per_image_boxes(F, boxes, gt_boxes):
    """Boxes of any layout as one set an image, for a graph that cannot read shapes.

    boxes: (N, 4) or (1, N, 4) shared by the batch, or (B, N, 4); gt_boxes:
    (B, M, 4) -> (B, N, 4).
    """
    batch = F.reshape(boxes, shape=(-1, 0, 0), reverse=True)                # (1 or B, N, 4)
    zeros = F.zeros_like(F.slice_axis(gt_boxes, axis=1, begin=0, end=1))    # (B, 1, 4)
    return F.broadcast_add(batch, zeros)                                    # (B, N, 4)


def per_image_iou(F, boxes, gt_boxes, num_image=None):
    """IoU of every box with every ground truth of the same image, image-major.

    boxes: (B, N, 4), gt_boxes: (B, M, 4) -> (B, N, M). With ``num_image``
    = B (always known for NDArray inputs): one fused ``contrib.box_iou`` an
    image, stacked, the only step repeated per image in a graph. Without it, in
    a symbolic graph: :func:`batched_iou`, correct but about five times slower
    a pair.

    No batched form serves better: ``box_iou`` of the whole batch computes B
    times the pairs, and ``contrib.foreach`` (one graph operator)
    intermittently returns zeros inside a net hybridized with
    ``static_alloc=True``, recorded by autograd, whose input shapes change
    between calls: how GluonCV trains Faster R-CNN (MXNet 1.9.1; a regression
    test in ``tests/test_rcnn.py``).
    """
    if num_image is None and hasattr(boxes, 'shape'):
        num_image = boxes.shape[0]
    if num_image is None:
        return batched_iou(F, boxes, gt_boxes)                              # (B, N, M)
    if num_image == 1:
        pairs = [(F.squeeze(boxes, axis=0), F.squeeze(gt_boxes, axis=0))]   # (N, 4), (M, 4)
    else:
        pairs = zip(F.split(boxes, num_outputs=num_image, axis=0, squeeze_axis=True),
                    F.split(gt_boxes, num_outputs=num_image, axis=0, squeeze_axis=True))
    return F.stack(*[F.contrib.box_iou(b, g, format='corner') for b, g in pairs],
                   axis=0)                                                  # (B, N, M)


def batched_iou(F, boxes, gt_boxes):
    """(B, N, 4) x (B, M, 4) -> (B, N, M) IoU by broadcast arithmetic (``box_iou``'s values)."""
    x1, y1, x2, y2 = _corners(F, boxes)                                     # (B, N, 1) each
    gx1, gy1, gx2, gy2 = [F.transpose(c, axes=(0, 2, 1))
                          for c in _corners(F, gt_boxes)]                   # (B, 1, M) each
    width = F.relu(F.broadcast_minimum(x2, gx2) - F.broadcast_maximum(x1, gx1))  # (B, N, M)
    height = F.relu(F.broadcast_minimum(y2, gy2) - F.broadcast_maximum(y1, gy1))  # (B, N, M)
    inter = width * height                                                  # (B, N, M)
    area = (x2 - x1) * (y2 - y1)                                            # (B, N, 1)
    gt_area = (gx2 - gx1) * (gy2 - gy1)                                     # (B, 1, M)
    union = F.broadcast_add(area, gt_area) - inter                          # (B, N, M)
    overlap = inter > 0                                                     # (B, N, M)
    return overlap * inter / (union + (1 - overlap))                        # (B, N, M)


def inside_image(F, boxes, im_hw, allowed_border, shared):
    """1 where a box lies inside its image, widened by ``allowed_border`` pixels.

    GluonCV's rule: a box is outside when x1 < -border, y1 < -border,
    x2 >= width + border or y2 >= height + border.
    boxes: (N, 4) when ``shared``, else (B, N, 4); im_hw: (B, 2) height, width
    -> (B, N) in {0, 1}.
    """
    x1, y1, x2, y2 = [F.reshape(c, shape=(1, -1) if shared else (0, -1))
                      for c in _corners(F, boxes)]                          # (1 or B, N)
    height, width = F.split(im_hw, num_outputs=2, axis=-1)                  # (B, 1) each
    border = _ops.full_like(F, width, float(allowed_border))                # (B, 1)
    return (F.broadcast_greater_equal(x1, -border)
            * F.broadcast_greater_equal(y1, -border)
            * F.broadcast_lesser(x2, width + border)
            * F.broadcast_lesser(y2, height + border))                      # (B, N)


def encode(F, boxes, gt_boxes, stds, means=(0., 0., 0., 0.)):
    """Normalized center offsets of ``gt_boxes`` relative to ``boxes``.

    GluonCV's ``NormalizedBoxCenterEncoder``: with width w = x2 - x1 and center
    x = x1 + w / 2, the targets are ((gx - x) / w - m0) / s0,
    ((gy - y) / h - m1) / s1, (log(gw / w) - m2) / s2, (log(gh / h) - m3) / s3.
    boxes, gt_boxes: (..., 4) of the same shape -> (..., 4).
    """
    x1, y1, x2, y2 = _corners(F, boxes)                                     # (..., 1) each
    gx1, gy1, gx2, gy2 = _corners(F, gt_boxes)                              # (..., 1) each
    w, h = x2 - x1, y2 - y1
    gw, gh = gx2 - gx1, gy2 - gy1
    dx = ((gx1 + gw * 0.5) - (x1 + w * 0.5)) / w
    dy = ((gy1 + gh * 0.5) - (y1 + h * 0.5)) / h
    codes = [dx, dy, F.log(gw / w), F.log(gh / h)]
    return F.concat(*[(c - m) / s for c, m, s in zip(codes, means, stds)], dim=-1)  # (..., 4)
