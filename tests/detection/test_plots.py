"""What people look at after a detection run: drawings with a colour per class, legible labels, a legend and the
file name; PR-curve legends beside the curves."""
import numpy as np
import pytest
import torch

from backbonekit.detection.plots import (
    class_colours, draw_detections, pr_curve_figure, save_detection_grid, text_colour,
)
from backbonekit.training.plots import plt
from figure_checks import cut_off

NAMES = ["car", "person", "bike"]


def _detections(boxes, labels, scores):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels),
            "scores": torch.tensor(scores)}


def test_label_text_contrasts_with_its_class_colour():
    assert text_colour((31, 119, 180)) == (255, 255, 255)  # tab10 blue: white text
    assert text_colour((255, 127, 14)) == (0, 0, 0)  # orange: black text
    colours = class_colours(12)
    assert len(set(colours)) == 12 and len(set(class_colours(3))) == 3


def _has_colour(image: torch.Tensor, colour) -> bool:
    return bool((image.permute(1, 2, 0) == torch.tensor(colour, dtype=torch.uint8)).all(-1).any())


def test_each_class_is_drawn_in_its_colour_under_a_header():
    image = torch.full((3, 600, 800), 255, dtype=torch.uint8)  # white: at least this size is not enlarged
    det = _detections([[100, 100, 300, 300], [400, 100, 700, 500]], [0, 1], [0.9, 0.8])
    drawn = draw_detections(image, det, NAMES, title="frame_0001.png")
    assert drawn.shape[0] == 3 and drawn.shape[2] == 800 and drawn.shape[1] > 600  # a header strip on top
    body = drawn[:, drawn.shape[1] - 600:]
    car, person, bike = class_colours(3)
    assert _has_colour(body, car) and _has_colour(body, person) and not _has_colour(body, bike)
    # Text on a filled box: white letters on the blue car label, black letters on the orange person label.
    label = body[:, 100:118, 100:160]
    assert _has_colour(label, car) and _has_colour(label, (255, 255, 255))
    label = body[:, 100:118, 400:470]
    assert _has_colour(label, person) and _has_colour(label, (0, 0, 0))
    assert not drawn[:, :drawn.shape[1] - 600].float().mean() < 200  # the header is mostly white


def test_truth_is_drawn_and_the_legend_grows_with_it():
    image = torch.zeros((3, 64, 96), dtype=torch.uint8)
    det = _detections([[5, 5, 40, 40]], [2], [0.5])
    target = {"boxes": torch.tensor([[50.0, 10, 90, 60]]), "labels": torch.tensor([1])}
    alone = draw_detections(image, det, NAMES, title="a.png", min_side=480)
    with_truth = draw_detections(image, det, NAMES, target, title="a.png", min_side=480)
    assert alone.shape[-1] == 480 == with_truth.shape[-1]  # a small image is enlarged so that labels stay legible
    assert with_truth.shape[1] >= alone.shape[1]  # the key (truth, prediction) added to the legend
    _, person, _ = class_colours(3)
    assert _has_colour(with_truth, person) and not _has_colour(alone, person)
    untitled = draw_detections(image, det, NAMES, min_side=480)
    assert untitled.shape[1] < alone.shape[1]
    assert draw_detections(image, det, NAMES).shape[-1] == 96  # otherwise in the image's own pixels


def test_a_long_file_name_is_shortened_in_the_middle():
    from PIL import ImageFont

    from backbonekit.detection.plots import _fit, _font_path

    font = ImageFont.truetype(_font_path(), 12)
    name = "a_very_long_directory_name/" * 5 + "000123.png"
    fitted = _fit(name, font, 200)
    assert font.getlength(fitted) <= 200 and fitted.endswith(".png") and "…" in fitted
    assert _fit("short.png", font, 200) == "short.png"


def test_grid_takes_drawings_of_different_heights(tmp_path):
    images = [torch.zeros((3, 50, 60), dtype=torch.uint8), torch.zeros((3, 70, 60), dtype=torch.uint8)]
    out = save_detection_grid(images, tmp_path / "grid.png")
    from PIL import Image

    assert Image.open(out).size == (2 * 60 + 3 * 4, 70 + 2 * 4)


@pytest.mark.parametrize("classes", [3, 40])
def test_pr_legend_is_beside_the_curves_and_inside_the_figure(classes):
    names = [f"class number {i}" for i in range(classes)]
    curves = {n: list(np.linspace(1, 0.2, 101)) for n in names}
    fig = pr_curve_figure(curves, {n: 55.0 for n in names}, "precision–recall at IoU 0.5")
    try:
        fig.canvas.draw()  # the constrained layout is made when the figure is drawn
        ax = fig.axes[0]
        legend_box = fig.legends[0].get_window_extent(fig.canvas.get_renderer())
        assert legend_box.x0 >= ax.get_window_extent().x1  # right of the axes, over no curve
        assert not cut_off(fig)
    finally:
        plt.close(fig)


def _overlapping_pairs(rects):
    return [(a, b) for i, a in enumerate(rects) for b in rects[i + 1:]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]


def test_labels_of_a_crowded_image_do_not_cover_one_another(monkeypatch):
    """An undertrained detector at a low threshold: dozens of boxes, several sharing a corner (their labels were
    drawn on top of each other, "Cyclist 0.07ar 0.07"). Every label drawn lies inside the picture and no two
    overlap; a label with no room left is counted in the header instead."""
    from backbonekit.detection import plots

    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(40, 2, 2, generator=generator) * torch.tensor([384.0, 128.0])
    boxes = torch.cat([corners.amin(1), corners.amax(1) + 4], 1)
    boxes[:6] = torch.tensor([20.0, 20.0, 90.0, 70.0]) + torch.arange(6.0)[:, None] * torch.tensor([0, 0, 8, 5])
    det = _detections(boxes.tolist(), [i % 3 for i in range(40)], torch.linspace(0.9, 0.06, 40).tolist())
    placed = []
    real = plots.place_labels
    monkeypatch.setattr(plots, "place_labels", lambda *a, **k: placed.append(real(*a, **k)) or placed[-1])
    drawn = draw_detections(torch.zeros((3, 128, 384), dtype=torch.uint8), det, NAMES, score_threshold=0.05,
                            title="crowded.png", min_side=480)
    rects = [r for r in placed[0] if r is not None]
    assert len(placed[0]) == 40 and len(rects) >= 20
    assert all(r is not None for r in placed[0][:6]) and not _overlapping_pairs(rects)  # the shared corner too
    height, width = 160, 480  # the picture below the header: 128×384 enlarged to a 480 px long side
    assert drawn.shape[-1] == width
    assert all(0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height for x1, y1, x2, y2 in rects)


@pytest.mark.parametrize("canvas", [(160, 480), (480, 160), (100, 100)])
def test_placed_labels_never_overlap_and_stay_on_the_canvas(canvas):
    from backbonekit.detection.plots import place_labels

    generator = torch.Generator().manual_seed(1)
    corners = torch.rand(60, 2, 2, generator=generator) * torch.tensor([canvas[1], canvas[0]], dtype=torch.float32)
    boxes = torch.cat([corners.amin(1), corners.amax(1)], 1)
    sizes = [(int(w), 18) for w in torch.randint(40, 110, (60,), generator=generator)]
    places = place_labels(boxes, sizes, canvas)
    rects = [r for r in places if r is not None]
    assert len(rects) >= (5 if canvas == (100, 100) else 10) and not _overlapping_pairs(rects)
    for rect, size in zip(places, sizes):
        if rect is not None:
            assert (rect[2] - rect[0], rect[3] - rect[1]) == size
            assert 0 <= rect[0] and rect[2] <= canvas[1] and 0 <= rect[1] and rect[3] <= canvas[0]
