"""Drawing V7 results over the picture with Pillow: boxes, polygons, lines, keypoints and skeletons.

Results are in pixels of the full picture; the drawing is made on the picture as shown (usually a
smaller copy), so `scale_xy` maps one to the other and lines stay crisp at any photo size.
Occluded skeleton nodes are hollow rings on thin, faint edges; visible nodes are filled dots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

RGB = tuple[int, int, int]

#: Bright, mutually distinct colours that stay readable on photos (class colours, in /classes order).
PALETTE: tuple[RGB, ...] = (
    (255, 77, 79),
    (54, 207, 201),
    (255, 197, 61),
    (89, 126, 247),
    (115, 209, 61),
    (247, 89, 171),
    (255, 156, 110),
    (146, 84, 222),
    (64, 169, 255),
    (186, 230, 55),
)
SENT_BOX_LABEL = "sent box"


def class_colors(names: Iterable[str]) -> dict[str, RGB]:
    """A colour per class name, stable for a given class order."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(dict.fromkeys(names))}


def _text_color(background: RGB) -> RGB:
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def _scaled(points: Iterable[Mapping[str, Any]], scale_xy: tuple[float, float]) -> list[tuple[float, float]]:
    return [(float(p["x"]) * scale_xy[0], float(p["y"]) * scale_xy[1]) for p in points]


def _bounds(points: Sequence[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _dashed_rectangle(draw: ImageDraw.ImageDraw, xyxy: tuple[float, ...], color, width: int, dash: int) -> None:
    x0, y0, x1, y1 = xyxy
    for a, b in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        steps = max(1, int(length // dash))
        for i in range(0, steps, 2):
            t0, t1 = i / steps, min(1.0, (i + 1) / steps)
            start = (a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0)
            end = (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)
            draw.line([start, end], fill=color, width=width)


class _Labels:
    """Label chips placed after the shapes, nudged down so that they do not cover each other."""

    def __init__(self, font: ImageFont.ImageFont, image_wh: tuple[int, int]) -> None:
        self.font = font
        self.image_wh = image_wh
        self.placed: list[tuple[float, float, float, float]] = []
        self.chips: list[tuple[tuple[float, float, float, float], str, RGB]] = []

    def add(self, text: str, anchor_xy: tuple[float, float], color: RGB) -> None:
        left, top, right, bottom = self.font.getbbox(text)
        pad = 3
        w, h = right - left + 2 * pad, bottom - top + 2 * pad
        x = min(max(0.0, anchor_xy[0]), max(0.0, self.image_wh[0] - w))
        y = anchor_xy[1] - h if anchor_xy[1] - h >= 0 else anchor_xy[1]
        y = min(max(0.0, y), max(0.0, self.image_wh[1] - h))
        for _ in range(12):
            rect = (x, y, x + w, y + h)
            if not any(r[0] < rect[2] and rect[0] < r[2] and r[1] < rect[3] and rect[1] < r[3] for r in self.placed):
                break
            y = y + h if y + 2 * h <= self.image_wh[1] else max(0.0, y - h)
        rect = (x, y, x + w, y + h)
        self.placed.append(rect)
        self.chips.append((rect, text, color))

    def draw(self, draw: ImageDraw.ImageDraw) -> None:
        for (x0, y0, x1, y1), text, color in self.chips:
            draw.rectangle((x0, y0, x1, y1), fill=(*color, 230))
            left, top, _, _ = self.font.getbbox(text)
            draw.text((x0 + 3 - left, y0 + 3 - top), text, fill=_text_color(color), font=self.font)


def draw_results(
    image: Image.Image,
    results: Iterable[Mapping[str, Any]],
    *,
    scale_xy: tuple[float, float] = (1.0, 1.0),
    sent_box_xywh: tuple[float, float, float, float] | None = None,
    skeleton_edges: Mapping[str, Sequence[Sequence[str]]] | None = None,
    colors: Mapping[str, RGB] | None = None,
    show_labels: bool = True,
) -> Image.Image:
    """A copy of `image` with the results and the sent Auto-Annotate box drawn over it.

    `skeleton_edges` gives, per class name, the node-name pairs to join (from GET /models);
    `colors` maps class names to colours (`class_colors`); unknown classes get palette colours too.
    """
    base = image.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    shortest = min(base.size)
    line_px = max(2, round(shortest / 300))
    font = ImageFont.load_default(size=max(11, round(shortest / 56)))
    labels = _Labels(font, base.size)
    colors = dict(colors or {})
    skeleton_edges = skeleton_edges or {}
    tags: list[tuple[str, RGB]] = []

    for result in results:
        name = str(result.get("label") or result.get("name") or "?")
        if name not in colors:
            colors[name] = PALETTE[len(colors) % len(PALETTE)]
        color = colors[name]
        confidence = result.get("confidence")
        text = f"{name} {confidence:.2f}" if isinstance(confidence, int | float) else name
        anchor = None
        if "bounding_box" in result:
            box = result["bounding_box"]
            x0, y0 = box["x"] * scale_xy[0], box["y"] * scale_xy[1]
            x1, y1 = x0 + box["w"] * scale_xy[0], y0 + box["h"] * scale_xy[1]
            draw.rectangle((x0, y0, x1, y1), outline=(*color, 255), width=line_px)
            anchor = (x0, y0)
        elif "polygon" in result and result["polygon"].get("path"):
            points = _scaled(result["polygon"]["path"], scale_xy)
            draw.polygon(points, fill=(*color, 45))
            draw.line([*points, points[0]], fill=(*color, 255), width=line_px, joint="curve")
            anchor = _bounds(points)[:2]
        elif "line" in result and result["line"].get("path"):
            points = _scaled(result["line"]["path"], scale_xy)
            draw.line(points, fill=(*color, 255), width=line_px, joint="curve")
            anchor = _bounds(points)[:2]
        elif "keypoint" in result:
            (x, y), r = _scaled([result["keypoint"]], scale_xy)[0], line_px * 2.2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(*color, 255), outline=(0, 0, 0, 200), width=1)
            anchor = (x + r, y - r)
        elif "skeleton" in result:
            nodes = result["skeleton"].get("nodes") or []
            where = {n["name"]: (*_scaled([n], scale_xy)[0], bool(n.get("occluded"))) for n in nodes if "name" in n}
            for a, b in skeleton_edges.get(name, ()):
                if a in where and b in where:
                    hidden = where[a][2] or where[b][2]
                    fill = (*color, 110) if hidden else (*color, 255)
                    draw.line(
                        [where[a][:2], where[b][:2]], fill=fill, width=max(1, line_px // 2 if hidden else line_px)
                    )
            r = line_px * 1.6
            for x, y, occluded in where.values():
                if occluded:
                    draw.ellipse((x - r, y - r, x + r, y + r), outline=(*color, 200), width=max(1, line_px // 2))
                else:
                    draw.ellipse((x - r, y - r, x + r, y + r), fill=(*color, 255), outline=(0, 0, 0, 180), width=1)
            visible = [(x, y) for x, y, occluded in where.values() if not occluded] or [
                (x, y) for x, y, _ in where.values()
            ]
            if visible:
                anchor = _bounds(visible)[:2]
        elif "tag" in result:
            tags.append((text, color))
        if anchor is not None and show_labels:
            labels.add(text, anchor, color)

    if sent_box_xywh is not None:
        x, y, w, h = sent_box_xywh
        xyxy = (x * scale_xy[0], y * scale_xy[1], (x + w) * scale_xy[0], (y + h) * scale_xy[1])
        draw.rectangle(xyxy, outline=(0, 0, 0, 160), width=line_px + 2)
        _dashed_rectangle(draw, xyxy, (255, 255, 255, 255), line_px, dash=max(6, line_px * 4))
        labels.add(SENT_BOX_LABEL, (xyxy[0], xyxy[3]), (255, 255, 255))  # inside the box, at its bottom

    for i, (text, color) in enumerate(tags):
        labels.add(text, (4, 4 + i * (font.size + 8)), color)

    composed = Image.alpha_composite(base, layer)
    label_layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    labels.draw(ImageDraw.Draw(label_layer))
    return Image.alpha_composite(composed, label_layer).convert("RGB")
