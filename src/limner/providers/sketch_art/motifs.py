"""Silhouette motifs for the sketch renderer: buildings, trees, figures, animals.

Every function draws onto an ``ImageDraw.Draw(img, "RGBA")`` standing on
ground point ``(x, y)`` with size ``s`` in pixels, and takes its colours and
random choices from a :class:`Pen`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable

from PIL import Image, ImageDraw

from .palettes import RGB, mix, shade

Pt = tuple[float, float]


@dataclass
class Pen:
    img: Image.Image
    draw: ImageDraw.ImageDraw
    rng: random.Random
    #: ink colour for outlines, or None when the style draws no lines
    ink: RGB | None
    lw: int
    fill: RGB
    dark: RGB
    light: RGB
    foliage: RGB
    accent: RGB
    sky: RGB
    ink_alpha: int = 190

    def poly(self, pts: list[Pt], fill: RGB | None = None, outline: bool = True) -> None:
        d = self.draw
        d.polygon(pts, fill=fill if fill is not None else self.fill)
        if outline and self.ink is not None and len(pts) > 2:
            self.sketch_line(pts + [pts[0]])

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: RGB | None = None, outline: bool = True) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], fill, outline)

    def sketch_line(self, pts: list[Pt], alpha: int | None = None, width: int | None = None, jitter: float = 0.6) -> None:
        """An ink line drawn twice with a little wobble, like a quick pen stroke."""
        if self.ink is None or len(pts) < 2:
            return
        a = self.ink_alpha if alpha is None else alpha
        w = self.lw if width is None else width
        r = self.rng
        self.draw.line(pts, fill=(*self.ink, a), width=w, joint="curve")
        j = max(0.8, w * jitter * 1.5)
        pts2 = [(x + r.uniform(-j, j), y + r.uniform(-j, j)) for x, y in pts]
        self.draw.line(pts2, fill=(*self.ink, a // 3), width=max(1, w // 2 + (w > 2)))

    def stencil(self, box: tuple[float, float, float, float], fn: Callable[[ImageDraw.ImageDraw, float, float], None], fill: RGB) -> None:
        """Paint ``fill`` through a mask drawn by ``fn(draw, ox, oy)`` (255 = paint, 0 = hole).

        ``fn`` draws in image coordinates minus (ox, oy); the mask only covers ``box``.
        """
        x0, y0 = int(math.floor(box[0])), int(math.floor(box[1]))
        x1, y1 = int(math.ceil(box[2])), int(math.ceil(box[3]))
        if x1 <= x0 or y1 <= y0:
            return
        mask = Image.new("L", (x1 - x0, y1 - y0), 0)
        fn(ImageDraw.Draw(mask), x0, y0)
        self.img.paste(Image.new("RGB", mask.size, fill), (x0, y0), mask)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: RGB | None = None, outline: bool = True) -> None:
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        self.draw.ellipse(box, fill=fill if fill is not None else self.fill)
        if outline and self.ink is not None and rx > 2:
            self.draw.ellipse(box, outline=(*self.ink, self.ink_alpha), width=self.lw)


# --- buildings ---------------------------------------------------------------------------------

def tent(p: Pen, x: float, y: float, s: float) -> None:
    r = p.rng
    w = s * r.uniform(1.1, 1.6)
    h = s * r.uniform(0.55, 0.8)
    peak = x + w * r.uniform(-0.1, 0.1)
    p.poly([(x - w / 2, y), (peak - w * 0.08, y - h), (peak + w * 0.12, y - h * 0.96), (x + w / 2, y)], p.fill)
    p.poly([(x - w / 2, y), (peak - w * 0.08, y - h), (x - w * 0.05, y)], p.light, outline=False)
    door = w * 0.13
    p.poly([(peak - door, y), (peak, y - h * 0.55), (peak + door, y)], p.dark, outline=False)
    if p.ink is not None:
        p.sketch_line([(peak - w * 0.08, y - h), (peak - w * 0.08, y - h - s * 0.12)], width=max(1, p.lw - 1))


def house(p: Pen, x: float, y: float, s: float, roof: str = "gable") -> None:
    r = p.rng
    w = s * r.uniform(0.8, 1.3)
    h = s * r.uniform(0.55, 0.9)
    x0, x1 = x - w / 2, x + w / 2
    p.rect(x0, y - h, x1, y, p.fill)
    p.rect(x0 + w * 0.62, y - h, x1, y, mix(p.fill, p.dark, 0.35), outline=False)
    if roof == "gable":
        p.poly([(x0 - w * 0.08, y - h), (x - w * 0.1, y - h - s * 0.45), (x1 + w * 0.08, y - h)], p.dark)
    elif roof == "dome":
        p.draw.pieslice((x - w * 0.3, y - h - w * 0.3, x + w * 0.3, y - h + w * 0.3), 180, 360, fill=p.light)
        if p.ink is not None:
            p.draw.arc((x - w * 0.3, y - h - w * 0.3, x + w * 0.3, y - h + w * 0.3), 180, 360, fill=(*p.ink, p.ink_alpha), width=p.lw)
    _windows(p, x0, y - h, x1, y, rows=r.choice((1, 1, 2)), cols=r.choice((1, 2, 2, 3)))


def _windows(p: Pen, x0: float, y0: float, x1: float, y1: float, rows: int, cols: int, lit: bool = False) -> None:
    w, h = x1 - x0, y1 - y0
    if w < 6 or h < 6:
        return
    cw, ch = w / (cols * 2 + 1), h / (rows * 2 + 1)
    col = mix(p.accent, (255, 220, 140), 0.6) if lit else p.dark
    for i in range(rows):
        for j in range(cols):
            if p.rng.random() < 0.15:
                continue
            wx, wy = x0 + cw * (2 * j + 1), y0 + ch * (2 * i + 1)
            p.draw.rectangle((wx, wy, wx + cw * 0.8, wy + ch * 0.9), fill=col)


def flat_house(p: Pen, x: float, y: float, s: float) -> None:
    """A cubic stone house with a flat roof (Levant, modern Israel)."""
    r = p.rng
    w = s * r.uniform(0.7, 1.4)
    h = s * r.uniform(0.5, 1.1)
    x0, x1 = x - w / 2, x + w / 2
    p.rect(x0, y - h, x1, y, p.light)
    p.rect(x0 + w * 0.7, y - h, x1, y, mix(p.light, p.dark, 0.3), outline=False)
    p.draw.rectangle((x0 - w * 0.03, y - h - s * 0.05, x1 + w * 0.03, y - h), fill=mix(p.light, p.dark, 0.2))
    _windows(p, x0, y - h, x1, y, rows=max(1, int(h / (s * 0.35))), cols=r.choice((2, 3)))


def block(p: Pen, x: float, y: float, s: float, lit: bool = False) -> None:
    """An apartment / office block."""
    r = p.rng
    w = s * r.uniform(0.8, 1.3)
    h = s * r.uniform(1.2, 2.4)
    p.rect(x - w / 2, y - h, x + w / 2, y, p.fill)
    p.rect(x + w * 0.2, y - h, x + w / 2, y, mix(p.fill, p.dark, 0.4), outline=False)
    _windows(p, x - w / 2, y - h, x + w / 2, y, rows=max(2, int(h / (s * 0.3))), cols=3, lit=lit)


def tower(p: Pen, x: float, y: float, s: float, top: str = "crenel") -> None:
    r = p.rng
    w = s * r.uniform(0.4, 0.6)
    h = s * r.uniform(1.4, 2.2)
    x0, x1 = x - w / 2, x + w / 2
    p.rect(x0, y - h, x1, y, p.fill)
    p.rect(x0 + w * 0.6, y - h, x1, y, mix(p.fill, p.dark, 0.35), outline=False)
    if top == "crenel":
        n = 3
        cw = w / (2 * n - 1)
        for i in range(n):
            p.rect(x0 + 2 * i * cw, y - h - cw, x0 + (2 * i + 1) * cw, y - h, p.fill)
    elif top == "spire":
        p.poly([(x0 - w * 0.05, y - h), (x, y - h - w * 1.6), (x1 + w * 0.05, y - h)], p.dark)
    elif top == "dome":
        p.draw.pieslice((x0, y - h - w / 2, x1, y - h + w / 2), 180, 360, fill=p.dark)
    p.draw.rectangle((x - w * 0.1, y - h * 0.7, x + w * 0.1, y - h * 0.55), fill=p.dark)


def wall(p: Pen, x0: float, x1: float, y: float, s: float) -> None:
    h = s * 0.45
    p.rect(x0, y - h, x1, y, mix(p.fill, p.dark, 0.15))
    cw = s * 0.12
    xx = x0
    while xx + cw <= x1:
        p.draw.rectangle((xx, y - h - cw * 0.8, xx + cw, y - h), fill=mix(p.fill, p.dark, 0.15))
        xx += cw * 2


def temple(p: Pen, x: float, y: float, s: float, pediment: bool = True) -> None:
    r = p.rng
    w = s * r.uniform(1.6, 2.2)
    h = s * r.uniform(0.8, 1.0)
    x0, x1 = x - w / 2, x + w / 2
    p.rect(x0 - w * 0.06, y - h * 0.12, x1 + w * 0.06, y, p.light)
    p.rect(x0, y - h, x1, y - h * 0.12, mix(p.light, p.dark, 0.45), outline=False)
    n = r.choice((4, 5, 6))
    cw = w / (2 * n - 1)
    for i in range(n):
        p.rect(x0 + 2 * i * cw, y - h, x0 + (2 * i + 1) * cw, y - h * 0.12, p.light, outline=False)
    p.rect(x0 - w * 0.04, y - h * 1.12, x1 + w * 0.04, y - h, p.light)
    if pediment:
        p.poly([(x0 - w * 0.05, y - h * 1.12), (x, y - h * 1.5), (x1 + w * 0.05, y - h * 1.12)], p.light)
    if p.ink is not None:
        for i in range(n):
            xx = x0 + (2 * i + 0.5) * cw
            p.sketch_line([(xx, y - h), (xx, y - h * 0.12)], alpha=90, width=1)


def ziggurat(p: Pen, x: float, y: float, s: float) -> None:
    w = s * p.rng.uniform(2.0, 2.8)
    steps = p.rng.choice((3, 4, 5))
    sh = s * 0.32
    for i in range(steps):
        ww = w * (1 - i / (steps + 0.6))
        yy = y - i * sh
        p.rect(x - ww / 2, yy - sh, x + ww / 2, yy, mix(p.fill, p.light, 0.15 * i))
        p.rect(x + ww * 0.25, yy - sh, x + ww / 2, yy, mix(p.fill, p.dark, 0.4), outline=False)
    p.rect(x - w * 0.04, y - steps * sh, x + w * 0.04, y, p.dark, outline=False)


def aqueduct(p: Pen, x0: float, x1: float, y: float, s: float) -> None:
    h = s * 1.1
    n = max(2, int((x1 - x0) / (s * 0.6)))
    span = (x1 - x0) / n
    pier = span * 0.24
    spring = y - h * 0.45  # where the arches spring from the piers
    crown = y - h * 0.82

    def fn(d: ImageDraw.ImageDraw, ox: float, oy: float) -> None:
        d.rectangle((x0 - ox, y - h - oy, x1 - ox, y - oy), fill=255)
        for i in range(n):
            a0, a1 = x0 + i * span + pier / 2, x0 + (i + 1) * span - pier / 2
            rx = (a1 - a0) / 2
            d.rectangle((a0 - ox, spring - oy, a1 - ox, y - oy + 1), fill=0)
            d.pieslice((a0 - ox, crown - oy, a1 - ox, crown + 2 * (spring - crown) - oy), 180, 360, fill=0)
            del rx

    pad = p.lw + 2
    p.stencil((x0 - pier / 2 - pad, y - h - pad, x1 + pier / 2 + pad, y + pad), fn, p.light)
    p.draw.rectangle((x0, y - h, x1, y - h * 0.92), fill=mix(p.light, p.dark, 0.25))
    if p.ink is not None:
        p.sketch_line([(x0, y - h), (x1, y - h), (x1, y), (x0, y), (x0, y - h)], width=max(1, p.lw - 1), alpha=140)
        for i in range(n):
            a0, a1 = x0 + i * span + pier / 2, x0 + (i + 1) * span - pier / 2
            p.draw.arc((a0, crown, a1, crown + 2 * (spring - crown)), 180, 360, fill=(*p.ink, 140), width=1)
            p.draw.line([(a0, spring), (a0, y)], fill=(*p.ink, 110), width=1)
            p.draw.line([(a1, spring), (a1, y)], fill=(*p.ink, 110), width=1)


def column(p: Pen, x: float, y: float, s: float) -> None:
    w = s * 0.16
    h = s * p.rng.uniform(1.0, 1.7)
    p.rect(x - w / 2, y - h, x + w / 2, y, p.light)
    p.rect(x - w, y - h - w * 0.5, x + w, y - h, p.light)
    p.rect(x - w * 0.8, y - w * 0.4, x + w * 0.8, y, p.light)


def factory(p: Pen, x: float, y: float, s: float, smoke: Callable[[float, float, float], None] | None = None) -> None:
    r = p.rng
    w = s * r.uniform(1.6, 2.4)
    h = s * r.uniform(0.6, 0.8)
    x0, x1 = x - w / 2, x + w / 2
    p.rect(x0, y - h, x1, y, p.fill)
    teeth = r.choice((3, 4, 5))
    tw = w / teeth
    for i in range(teeth):
        p.poly([(x0 + i * tw, y - h), (x0 + i * tw, y - h - s * 0.25), (x0 + (i + 1) * tw, y - h)], p.dark)
    cx = x0 + w * r.uniform(0.6, 0.85)
    ch = s * r.uniform(1.3, 1.9)
    p.rect(cx - s * 0.07, y - ch, cx + s * 0.07, y - h, p.dark)
    if smoke is not None:
        smoke(cx, y - ch, s)
    _windows(p, x0, y - h * 0.8, x1, y - h * 0.1, rows=1, cols=teeth + 1)


def barracks(p: Pen, x: float, y: float, s: float) -> None:
    w = s * p.rng.uniform(2.0, 3.0)
    h = s * 0.38
    x0, x1 = x - w / 2, x + w / 2
    p.rect(x0, y - h, x1, y, p.fill)
    p.poly([(x0 - s * 0.05, y - h), (x0 + s * 0.15, y - h - s * 0.22), (x1 - s * 0.15, y - h - s * 0.22), (x1 + s * 0.05, y - h)], p.dark)
    n = int(w / (s * 0.35))
    for i in range(1, n):
        xx = x0 + i * w / n
        p.draw.rectangle((xx - s * 0.04, y - h * 0.7, xx + s * 0.04, y - h * 0.4), fill=p.dark)


def watchtower(p: Pen, x: float, y: float, s: float) -> None:
    h = s * 1.8
    w = s * 0.45
    col = p.dark
    p.draw.line([(x - w / 2, y), (x - w * 0.3, y - h)], fill=col, width=max(1, p.lw))
    p.draw.line([(x + w / 2, y), (x + w * 0.3, y - h)], fill=col, width=max(1, p.lw))
    p.draw.line([(x - w * 0.45, y - h * 0.3), (x + w * 0.38, y - h * 0.75)], fill=col, width=max(1, p.lw - 1))
    p.rect(x - w * 0.45, y - h - s * 0.35, x + w * 0.45, y - h, col)
    p.poly([(x - w * 0.6, y - h - s * 0.35), (x, y - h - s * 0.6), (x + w * 0.6, y - h - s * 0.35)], col)


def fence(p: Pen, x0: float, x1: float, y_at: Callable[[float], float], s: float) -> None:
    step = s * 0.5
    h = s * 0.7
    col = (*p.dark, 220)
    posts: list[Pt] = []
    xx = x0
    while xx <= x1:
        gy = y_at(xx)
        p.draw.line([(xx, gy), (xx, gy - h)], fill=col, width=max(1, p.lw))
        p.draw.line([(xx, gy - h), (xx + s * 0.08, gy - h - s * 0.08)], fill=col, width=1)
        posts.append((xx, gy))
        xx += step
    for k in (0.25, 0.5, 0.75, 0.95):
        if len(posts) > 1:
            p.draw.line([(px, py - h * k) for px, py in posts], fill=(*p.dark, 160), width=1)


def windmill(p: Pen, x: float, y: float, s: float) -> None:
    w = s * 0.5
    h = s * 1.3
    p.poly([(x - w / 2, y), (x - w * 0.3, y - h), (x + w * 0.3, y - h), (x + w / 2, y)], p.fill)
    p.poly([(x - w * 0.35, y - h), (x, y - h - w * 0.45), (x + w * 0.35, y - h)], p.dark)
    hub = (x, y - h - w * 0.1)
    a0 = p.rng.uniform(0, math.pi / 2)
    for k in range(4):
        a = a0 + k * math.pi / 2
        ex, ey = hub[0] + math.cos(a) * s * 0.9, hub[1] + math.sin(a) * s * 0.9
        p.draw.line([hub, (ex, ey)], fill=p.dark, width=max(1, p.lw))
        nx, ny = -math.sin(a) * s * 0.12, math.cos(a) * s * 0.12
        mx, my = hub[0] + math.cos(a) * s * 0.3, hub[1] + math.sin(a) * s * 0.3
        p.poly([(mx, my), (ex, ey), (ex + nx, ey + ny), (mx + nx, my + ny)], p.light)


def poles(p: Pen, x0: float, x1: float, y_at: Callable[[float], float], s: float) -> None:
    """Telegraph poles with sagging wires."""
    step = s * 1.6
    tops: list[Pt] = []
    xx = x0
    while xx <= x1:
        gy = y_at(xx)
        p.draw.line([(xx, gy), (xx, gy - s)], fill=p.dark, width=max(1, p.lw))
        p.draw.line([(xx - s * 0.15, gy - s * 0.9), (xx + s * 0.15, gy - s * 0.9)], fill=p.dark, width=1)
        tops.append((xx, gy - s * 0.9))
        xx += step
    for (ax, ay), (bx, by) in zip(tops, tops[1:]):
        pts = [(ax + (bx - ax) * t, ay + (by - ay) * t + math.sin(math.pi * t) * s * 0.12) for t in (0, 0.25, 0.5, 0.75, 1)]
        p.draw.line(pts, fill=(*p.dark, 170), width=1)


# --- nature ------------------------------------------------------------------------------------

def _leaf(p: Pen, x: float, y: float, angle: float, length: float, droop: float, width: float, color: RGB) -> None:
    """A tapered, drooping frond from (x, y)."""
    ca, sa = math.cos(angle), math.sin(angle)
    upper: list[Pt] = []
    lower: list[Pt] = []
    for i in range(7):
        t = i / 6
        cx = x + ca * length * t
        cy = y + sa * length * t + droop * t * t
        # normal of the centre line
        dx = ca * length
        dy = sa * length + 2 * droop * t
        n = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / n, dx / n
        half = width * math.sin(math.pi * min(1.0, t * 1.15)) * (1 - 0.4 * t)
        upper.append((cx + nx * half, cy + ny * half))
        lower.append((cx - nx * half, cy - ny * half))
    p.draw.polygon(upper + lower[::-1], fill=color)


def palm(p: Pen, x: float, y: float, s: float) -> None:
    r = p.rng
    h = s * r.uniform(1.4, 2.0)
    lean = s * r.uniform(-0.35, 0.35)
    pts = [(x + lean * (t * t), y - h * t) for t in (0, 0.2, 0.4, 0.6, 0.8, 1)]
    trunk = shade(p.foliage, 0.55) if p.ink is None else mix(shade(p.foliage, 0.5), p.ink, 0.3)
    tw = max(2, int(s * 0.08))
    p.draw.line(pts, fill=trunk, width=tw, joint="curve")
    for px, py in pts[1:-1]:
        p.draw.line([(px - tw * 0.6, py), (px + tw * 0.6, py - tw * 0.3)], fill=shade(trunk, 0.7), width=1)
    top = pts[-1]
    n = r.randint(7, 9)
    for k in range(n):
        a = math.pi + (k + 0.5) * math.pi / n + r.uniform(-0.1, 0.1)
        ax = math.cos(a)
        length = s * r.uniform(0.65, 0.95) * (0.75 + 0.35 * abs(ax))
        col = mix(p.foliage, p.light, 0.18) if k % 2 else shade(p.foliage, 0.85)
        _leaf(p, top[0], top[1], math.atan2(math.sin(a) * 0.5, ax), length, s * 0.45 * abs(ax) + s * 0.05, s * 0.075, col)
    p.draw.ellipse((top[0] - tw, top[1] - tw * 0.8, top[0] + tw, top[1] + tw * 0.8), fill=shade(p.foliage, 0.6))


def cypress(p: Pen, x: float, y: float, s: float) -> None:
    h = s * p.rng.uniform(1.5, 2.3)
    w = h * 0.2
    pts = [(x, y - h), (x + w * 0.45, y - h * 0.7), (x + w * 0.5, y - h * 0.3), (x + w * 0.25, y), (x - w * 0.25, y), (x - w * 0.5, y - h * 0.3), (x - w * 0.45, y - h * 0.7)]
    p.poly(pts, p.foliage)
    p.poly([(x, y - h), (x + w * 0.45, y - h * 0.7), (x + w * 0.5, y - h * 0.3), (x + w * 0.25, y), (x, y)], shade(p.foliage, 0.8), outline=False)


def round_tree(p: Pen, x: float, y: float, s: float) -> None:
    """An olive / oak: a short trunk and a clustered crown."""
    r = p.rng
    h = s * r.uniform(0.5, 0.7)
    p.draw.line([(x, y), (x + s * 0.05, y - h)], fill=shade(p.foliage, 0.5), width=max(2, int(s * 0.1)))
    cx, cy = x + s * 0.05, y - h - s * 0.3
    for _ in range(r.randint(4, 6)):
        ox, oy = r.uniform(-0.45, 0.45) * s, r.uniform(-0.25, 0.15) * s
        rr = s * r.uniform(0.25, 0.38)
        p.ellipse(cx + ox, cy + oy, rr, rr * 0.8, mix(p.foliage, p.light, r.uniform(0.0, 0.2)), outline=False)
    if p.ink is not None:
        p.draw.arc((cx - s * 0.6, cy - s * 0.45, cx + s * 0.6, cy + s * 0.4), 200, 340, fill=(*p.ink, 120), width=1)


def bare_tree(p: Pen, x: float, y: float, s: float) -> None:
    r = p.rng
    col = (*p.dark, 230)

    def branch(x0: float, y0: float, a: float, length: float, w: int, depth: int) -> None:
        x1, y1 = x0 + math.cos(a) * length, y0 + math.sin(a) * length
        p.draw.line([(x0, y0), (x1, y1)], fill=col, width=max(1, w))
        if depth > 0:
            for da in (-r.uniform(0.3, 0.6), r.uniform(0.3, 0.6)):
                branch(x1, y1, a + da, length * r.uniform(0.6, 0.75), int(w * 0.65), depth - 1)

    branch(x, y, -math.pi / 2 + r.uniform(-0.1, 0.1), s * 0.7, max(2, int(s * 0.09)), 4)


def figure(p: Pen, x: float, y: float, s: float, staff: bool | None = None) -> None:
    """A robed human silhouette, ``s`` tall: head, shoulders, a long garment, maybe a staff."""
    r = p.rng
    col = p.dark
    f = r.choice((-1, 1))  # facing
    head = s * 0.085
    neck_y = y - s * 0.8
    sh_y = neck_y + s * 0.05
    sw = s * r.uniform(0.12, 0.15)  # half shoulder width
    hem = s * r.uniform(0.14, 0.2)  # half hem width
    lean = f * s * r.uniform(0.0, 0.04)
    body = [
        (x - sw * 0.45 + lean, neck_y), (x + sw * 0.45 + lean, neck_y),
        (x + sw + lean, sh_y + s * 0.03), (x + sw * 0.95, y - s * 0.45),
        (x + hem, y), (x - hem, y),
        (x - sw * 0.95, y - s * 0.45), (x - sw + lean, sh_y + s * 0.03),
    ]
    p.draw.polygon(body, fill=col)
    hx, hy = x + lean + f * s * 0.01, neck_y - head * 0.9
    p.draw.ellipse((hx - head, hy - head * 1.1, hx + head, hy + head * 0.9), fill=col)
    if r.random() < 0.5:  # a shawl over the head
        p.draw.polygon([(hx - head * 1.25, hy + head * 0.2), (hx - head * 0.4, hy - head * 1.35), (hx + head * 0.5, hy - head * 1.3),
                        (hx + head * 1.2, hy + head * 0.3), (x + sw * 1.05 + lean, sh_y + s * 0.12), (x - sw * 1.05 + lean, sh_y + s * 0.12)], fill=col)
    if staff if staff is not None else r.random() < 0.45:
        sx = x + f * (sw + s * 0.06)
        p.draw.line([(sx, y), (sx + f * s * 0.02, neck_y - s * 0.14)], fill=col, width=max(1, int(s * 0.03)))
        p.draw.line([(x + f * sw * 0.8 + lean, sh_y + s * 0.05), (sx, y - s * 0.5)], fill=col, width=max(1, int(s * 0.05)))
    else:
        arm = f * r.choice((-1, 1))
        p.draw.line([(x + arm * sw * 0.9 + lean, sh_y + s * 0.04), (x + arm * (sw * 1.1), y - s * 0.45)], fill=shade(col, 0.85), width=max(1, int(s * 0.05)))


def camel(p: Pen, x: float, y: float, s: float) -> None:
    """A dromedary in profile, ``s`` tall at the hump, facing a random way."""
    col = p.dark
    f = p.rng.choice((-1, 1))
    lw = max(1, int(s * 0.055))

    def P(dx: float, dy: float) -> Pt:  # noqa: N802 - local shorthand
        return (x + f * dx * s, y + dy * s)

    body = [P(-0.46, -0.6), P(-0.38, -0.74), P(-0.24, -0.9), P(-0.12, -0.98), P(0.0, -0.92), P(0.12, -0.8),
            P(0.26, -0.74), P(0.34, -0.66), P(0.32, -0.54), P(0.14, -0.48), P(-0.18, -0.48), P(-0.4, -0.52)]
    p.draw.polygon(body, fill=col)
    for lx, knee in ((-0.36, -0.03), (-0.26, 0.02), (0.16, -0.02), (0.26, 0.03)):
        p.draw.line([P(lx, -0.5), P(lx + knee, -0.26), P(lx + knee * 0.3, 0.0)], fill=col, width=lw, joint="curve")
    p.draw.line([P(0.28, -0.66), P(0.44, -0.66), P(0.52, -0.8), P(0.56, -0.93)], fill=col, width=int(lw * 2.2), joint="curve")
    p.draw.polygon([P(0.5, -1.0), P(0.6, -1.01), P(0.72, -0.95), P(0.71, -0.9), P(0.54, -0.88)], fill=col)
    p.draw.line([P(-0.45, -0.62), P(-0.5, -0.44)], fill=col, width=max(1, lw // 2))


def sheep(p: Pen, x: float, y: float, s: float) -> None:
    """A sheep, ``s`` long: a woolly body, dark head and legs."""
    r = p.rng
    f = r.choice((-1, 1))
    wool = mix(p.light, (250, 248, 240), 0.5)
    dark = p.dark
    lw = max(1, int(s * 0.08))
    body_y = y - s * 0.42
    for lx in (-0.28, -0.15, 0.18, 0.3):
        p.draw.line([(x + f * lx * s, body_y), (x + f * lx * s, y)], fill=dark, width=lw)
    for ox, oy, rr in ((-0.2, 0.0, 0.24), (0.05, -0.05, 0.27), (0.22, 0.0, 0.22), (0.0, 0.06, 0.25)):
        cx, cy = x + f * ox * s, body_y + oy * s
        p.draw.ellipse((cx - rr * s, cy - rr * s * 0.8, cx + rr * s, cy + rr * s * 0.8), fill=wool)
    hx, hy = x + f * 0.46 * s, body_y - s * 0.12
    p.draw.ellipse((hx - s * 0.12, hy - s * 0.09, hx + s * 0.12, hy + s * 0.09), fill=dark)
    if p.ink is not None and s > 6:
        p.draw.arc((x - s * 0.45, body_y - s * 0.3, x + s * 0.45, body_y + s * 0.25), 180, 360, fill=(*p.ink, 90), width=1)


def boat(p: Pen, x: float, y: float, s: float) -> None:
    col = p.dark
    w = s * 1.2
    p.draw.polygon([(x - w / 2, y - s * 0.15), (x + w / 2, y - s * 0.15), (x + w * 0.35, y), (x - w * 0.38, y)], fill=col)
    p.draw.line([(x, y - s * 0.15), (x, y - s * 1.1)], fill=col, width=max(1, int(s * 0.04)))
    p.draw.polygon([(x + s * 0.04, y - s * 1.05), (x + s * 0.5, y - s * 0.25), (x + s * 0.04, y - s * 0.25)], fill=mix(p.light, p.sky, 0.2))


def bird(p: Pen, x: float, y: float, s: float) -> None:
    col = (*(p.ink or p.dark), 170)
    p.draw.line([(x - s, y - s * 0.3), (x - s * 0.45, y - s * 0.45), (x, y)], fill=col, width=max(1, int(s * 0.18)), joint="curve")
    p.draw.line([(x, y), (x + s * 0.45, y - s * 0.45), (x + s, y - s * 0.3)], fill=col, width=max(1, int(s * 0.18)), joint="curve")
