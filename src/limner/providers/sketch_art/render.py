"""The sketch renderer: a seeded, layered landscape drawn with Pillow.

``render_sketch`` is a pure function of its arguments: the same arguments give
byte-identical PNGs. All randomness comes from generators seeded with a hash
of (seed, title, era, style); nothing reads the clock or global random state.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import zlib
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from . import motifs as m
from .palettes import PALETTES, RGB, Palette, lit, mix, normalize_era, shade
from .text import base_direction, draw_text, fit_title, format_year, get_font, sanitize, text_width

RENDERER = "sketch-v1"
#: PNG zlib settings: run-length matching compresses the textured drafts smaller than
#: level 6 deflate, as fast as level 1
PNG_COMPRESS_LEVEL = 6

# depth of each hill layer, far to near
_HAZE = (0.5, 0.3, 0.12, 0.0)
_OBJ_SCALE = (0.035, 0.055, 0.085, 0.13)


def style_kind(style: object) -> str:
    """``manuscript``, ``oil``, ``photo`` or ``sketch`` from a style name."""
    s = str(style or "").lower()
    if "manuscript" in s or "illuminat" in s:
        return "manuscript"
    if "oil" in s or "painterly" in s:
        return "oil"
    if "photo" in s:
        return "photo"
    return "sketch"


def _rngs(seed: object, title: str, era: str, kind: str) -> tuple[random.Random, np.random.Generator]:
    key = f"{RENDERER}\x1f{seed}\x1f{title}\x1f{era}\x1f{kind}".encode("utf-8", "surrogatepass")
    h = hashlib.sha256(key).digest()
    return random.Random(int.from_bytes(h[:16], "big")), np.random.default_rng(int.from_bytes(h[16:], "big"))


@dataclass
class Scene:
    img: Image.Image
    draw: ImageDraw.ImageDraw
    W: int
    H: int
    S: int
    rng: random.Random
    pal: Palette
    kind: str
    lighting: str
    horizon: float
    lw: int
    ridges: list[tuple[np.ndarray, np.ndarray]]
    #: x range of the ground that layer-1 motifs may stand on
    span: tuple[float, float] = (float("-inf"), float("inf"))
    city_x: float = 0.0
    #: framing: "panorama", "high" (much land), "low" (much sky), "close" (a large foreground motif)
    shot: str = "panorama"
    #: a uniform draw that era hooks use to pick one of their scene variants
    variant: float = 0.0
    sun: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: the caption's box, kept clear of foreground figures
    reserved: tuple[float, float, float, float] | None = None

    def ground(self, layer: int, x: float) -> float:
        xs, ys = self.ridges[layer]
        return float(np.interp(x, xs, ys))

    def base(self, layer: int, x0: float, x1: float) -> float:
        """The lowest ground between x0 and x1, so wide things never float on a slope."""
        xs, ys = self.ridges[layer]
        sel = ys[(xs >= x0) & (xs <= x1)]
        lo = float(sel.max()) if sel.size else self.ground(layer, (x0 + x1) / 2)
        return max(lo, self.ground(layer, x0), self.ground(layer, x1))

    def scale(self, layer: int) -> float:
        return self.S * _OBJ_SCALE[layer]

    def pen(self, layer: int) -> m.Pen:
        p = self.pal
        hz = _HAZE[layer]
        sky = p.sky_horizon
        ink = None if self.kind in ("oil", "photo") else p.ink
        return m.Pen(
            img=self.img,
            draw=self.draw,
            rng=self.rng,
            ink=ink,
            lw=max(1, int(round(self.lw * (0.6 + 0.25 * layer)))),
            fill=mix(p.stone, sky, hz),
            dark=mix(shade(p.hills[min(3, layer + 1)], 0.62), sky, hz * 0.8),
            light=mix(shade(p.stone, 1.1), sky, hz),
            foliage=mix(p.foliage, sky, hz),
            accent=p.accent,
            sky=sky,
            ink_alpha=int(200 - 120 * hz),
        )


# --- sky ---------------------------------------------------------------------------------------

def _sky(W: int, H: int, pal: Palette, horizon: float) -> Image.Image:
    y = np.arange(H, dtype=np.float32)
    t = np.clip(y / max(1.0, horizon), 0, 1) ** 1.25
    top = np.array(pal.sky_top, np.float32)
    hor = np.array(pal.sky_horizon, np.float32)
    col = (top[None, :] * (1 - t[:, None]) + hor[None, :] * t[:, None]).astype(np.uint8)
    return Image.fromarray(col.reshape(H, 1, 3)).resize((W, H), Image.Resampling.NEAREST)


def _soft(W: int, H: int, draw_fn: Callable[[ImageDraw.ImageDraw, float], None], blur: float) -> Image.Image:
    """A soft mask: drawn at quarter size by ``draw_fn(draw, scale)``, blurred, scaled up."""
    f = 4
    w, h = max(1, W // f), max(1, H // f)
    mask = Image.new("L", (w, h), 0)
    draw_fn(ImageDraw.Draw(mask), w / W)
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(max(0.5, blur / f)))
    return mask.resize((W, H), Image.Resampling.BILINEAR)


def _sky_image(sc: Scene) -> Image.Image:
    """Sky gradient, sun glow and clouds: all soft, so painted at quarter size and scaled up."""
    W, H, S, rng, pal = sc.W, sc.H, sc.S, sc.rng, sc.pal
    f = 4 if S >= 64 else 1
    w, h = max(1, -(-W // f)), max(1, -(-H // f))
    k = w / W
    sky = _sky(w, h, pal, sc.horizon * k)
    sx = W * rng.uniform(0.14, 0.86)
    sy = sc.horizon - H * rng.uniform(0.14, 0.36)
    sr = S * rng.uniform(0.04, 0.065)
    sc.sun = (sx, sy, sr)
    glow_strength = {"day": 120, "dusk": 170, "night": 70, "overcast": 90}[sc.lighting]
    glow = Image.new("L", (w, h), 0)
    gr = sr * 3.2 * k
    ImageDraw.Draw(glow).ellipse((sx * k - gr, sy * k - gr, sx * k + gr, sy * k + gr), fill=glow_strength)
    sky.paste(pal.sun, (0, 0), glow.filter(ImageFilter.GaussianBlur(max(0.5, sr * 2.2 * k))))

    overcast = sc.lighting == "overcast"
    n = rng.randint(5, 8) if overcast else rng.randint(1, 4)
    if sc.lighting == "night":
        n = rng.randint(0, 2)
    if sc.kind == "manuscript":
        n = 0
    blobs: list[tuple[float, float, float, float]] = []
    for _ in range(n):
        cx, cy = rng.uniform(-0.1, 1.1) * W, rng.uniform(0.08, 0.8) * sc.horizon
        width = S * rng.uniform(0.15, 0.35) * (1.8 if overcast else 1)
        for _k in range(rng.randint(4, 7)):
            ox = rng.uniform(-0.5, 0.5) * width
            rr = width * rng.uniform(0.14, 0.26)
            blobs.append((cx + ox, cy - rr * rng.uniform(0, 0.6), rr * rng.uniform(1.2, 1.8), rr * (0.5 if overcast else 0.8)))
    if blobs:
        blur = ImageFilter.GaussianBlur(max(0.5, S * 0.012 * k))
        for dy, val, col in (
            (0.0, 150 if overcast else 200, mix(pal.cloud, pal.sky_top, 0.45)),  # shaded underside
            (-S * 0.012, 140 if overcast else 225, pal.cloud),  # lit top
        ):
            mask = Image.new("L", (w, h), 0)
            d = ImageDraw.Draw(mask)
            for x, y, rx, ry in blobs:
                d.ellipse(((x - rx) * k, (y - ry + dy) * k, (x + rx) * k, (y + ry + dy) * k), fill=val)
            sky.paste(col, (0, 0), mask.filter(blur))
    return sky.resize((W, H), Image.Resampling.BILINEAR) if f > 1 else sky


def _gold(pal: Palette) -> RGB:
    return mix((214, 172, 72), pal.sky_horizon, 0.2) if pal.motif != "holocaust" else mix(pal.sun, pal.ink, 0.15)


def _diaper(sc: Scene) -> None:
    """The gold lattice of an illuminated miniature's sky."""
    d, pal, S = sc.draw, sc.pal, sc.S
    step = max(6.0, S * 0.055)
    ymax = sc.horizon + S * 0.02
    gold = _gold(pal)
    c = -ymax
    while c < sc.W + ymax:
        d.line([(c, 0), (c + ymax, ymax)], fill=(*gold, 60), width=1)
        d.line([(c, 0), (c - ymax, ymax)], fill=(*gold, 60), width=1)
        c += step
    r = max(1.0, step * 0.09)
    row = 0
    y = 0.0
    while y < ymax:
        x = (row % 2) * step / 2
        while x < sc.W + step:
            d.ellipse((x - r, y - r, x + r, y + r), fill=(*gold, 125))
            x += step
        y += step / 2
        row += 1


def _celestial(sc: Scene) -> None:
    """Stars, and the sun or moon disc, drawn crisp over the soft sky."""
    W, S, rng, pal = sc.W, sc.S, sc.rng, sc.pal
    sx, sy, sr = sc.sun
    d = sc.draw
    if sc.lighting == "night":
        for _ in range(int(60 + 80 * (W * sc.H) / 1e6)):
            x, y = rng.uniform(0, W), rng.uniform(0, sc.horizon * 0.95)
            r = max(0.6, S * rng.choice((0.0012, 0.0016, 0.0024)))
            d.ellipse((x - r, y - r, x + r, y + r), fill=(255, 250, 225, rng.randint(120, 230)))
        o = sr * rng.uniform(0.35, 0.6)

        def crescent(md: ImageDraw.ImageDraw, ox: float, oy: float) -> None:
            md.ellipse((sx - sr - ox, sy - sr - oy, sx + sr - ox, sy + sr - oy), fill=255)
            md.ellipse((sx - sr + o - ox, sy - sr - o * 0.4 - oy, sx + sr + o - ox, sy + sr - o * 0.4 - oy), fill=0)

        sc.pen(0).stencil((sx - sr - 2, sy - sr - 2, sx + sr + 2, sy + sr + 2), crescent, pal.sun)
    elif sc.kind == "manuscript":  # a gilded sun with rays
        gold = mix(_gold(pal), pal.sun, 0.25)
        for j in range(16):
            a = j * math.pi / 8
            ln = sr * (1.7 if j % 2 == 0 else 1.4)
            w = math.pi / 28
            d.polygon([(sx + math.cos(a - w) * sr * 0.9, sy + math.sin(a - w) * sr * 0.9), (sx + math.cos(a) * ln, sy + math.sin(a) * ln),
                       (sx + math.cos(a + w) * sr * 0.9, sy + math.sin(a + w) * sr * 0.9)], fill=(*gold, 200))
        d.ellipse((sx - sr, sy - sr, sx + sr, sy + sr), fill=gold, outline=(*pal.ink, 200), width=max(1, sc.lw))
    elif sc.lighting == "overcast":
        d.ellipse((sx - sr, sy - sr, sx + sr, sy + sr), fill=(*pal.sun, 150))
    else:
        d.ellipse((sx - sr, sy - sr, sx + sr, sy + sr), fill=pal.sun)


def _birds(sc: Scene) -> None:
    if sc.lighting in ("night", "overcast") or sc.pal.motif == "holocaust":
        return
    rng = sc.rng
    n = rng.choice((0, 0, 2, 3, 4, 5))
    if not n:
        return
    cx, cy = rng.uniform(0.2, 0.8) * sc.W, rng.uniform(0.15, 0.6) * sc.horizon
    p = sc.pen(1)
    for _ in range(n):
        m.bird(p, cx + rng.uniform(-0.12, 0.12) * sc.W, cy + rng.uniform(-0.06, 0.06) * sc.H, sc.S * rng.uniform(0.008, 0.014))


# --- ground ------------------------------------------------------------------------------------

def _ridge(rng: random.Random, W: int, base: float, amp: float, rough: float,
           peak: tuple[float, float, float] | None = None, n: int = 121) -> tuple[np.ndarray, np.ndarray]:
    xs = np.linspace(-0.03 * W, 1.03 * W, n)
    u = np.linspace(0.0, 1.0, n)
    y = np.zeros(n)
    total = 0.0
    for lo, hi, wgt in ((0.5, 1.3, 1.0), (1.6, 3.0, 0.5 * rough), (4.0, 7.0, 0.22 * rough), (9.0, 16.0, 0.1 * rough)):
        y += wgt * np.sin(2 * np.pi * rng.uniform(lo, hi) * u + rng.uniform(0, 2 * np.pi))
        total += wgt
    ys = base - amp * (0.5 + 0.5 * y / total)
    if peak is not None:
        px, pw, ph = peak
        ys = ys - ph * np.exp(-(((xs - px) / pw) ** 2)) * (1 + 0.08 * np.sin(xs / pw * 7))
    return xs, ys


def _hatch(sc: Scene, layer: int, depth: float) -> None:
    """Pencil hatching: small groups of short parallel strokes under a ridge line."""
    if sc.kind not in ("sketch", "manuscript"):
        return
    rng, pal = sc.rng, sc.pal
    xs, ys = sc.ridges[layer]
    nxt = sc.ridges[layer + 1] if layer + 1 < len(sc.ridges) else None
    groups = int((sc.W / max(1, sc.S)) * (9 + 5 * layer) * (0.6 if sc.kind == "manuscript" else 1))
    length = sc.S * (0.014 + 0.006 * layer)
    gap = max(2.0, sc.S * 0.0045)
    col = (*pal.ink, 55 + 12 * layer)
    for _ in range(groups):
        x = rng.uniform(0, sc.W)
        y0 = float(np.interp(x, xs, ys)) + sc.S * 0.006 + depth * rng.random() ** 1.5
        for k in range(rng.randint(3, 7)):
            xx = x + k * gap
            yy = y0 + rng.uniform(-0.1, 0.1) * length + (float(np.interp(xx, xs, ys)) - float(np.interp(x, xs, ys)))
            ln = length * rng.uniform(0.7, 1.0)
            if nxt is not None and yy + ln > float(np.interp(xx, *nxt)):
                continue  # hidden behind the nearer hill anyway
            sc.draw.line([(xx + ln * 0.45, yy), (xx, yy + ln)], fill=col, width=1)


def _water(sc: Scene, top: float, bottom: float) -> None:
    W, rng, pal = sc.W, sc.rng, sc.pal
    d = sc.draw
    far = mix(pal.water, pal.sky_horizon, 0.55)
    bands = 24
    hgt = (bottom - top) / bands
    for k in range(bands):
        t = (k / (bands - 1)) ** 0.7
        d.rectangle((0, top + k * hgt, W, top + (k + 1) * hgt + 1), fill=mix(far, pal.water, t))
    sx = sc.sun[0]
    light = (*mix(pal.water, pal.sun, 0.75), 170)
    dark = (*shade(pal.water, 0.8), 110)
    for _ in range(int(60 * W / sc.S)):
        y = rng.uniform(top, bottom)
        near_sun = rng.random() < 0.5
        x = rng.gauss(sx, sc.S * 0.05 * (1 + (y - top) / max(1, bottom - top))) if near_sun else rng.uniform(0, W)
        length = sc.S * rng.uniform(0.01, 0.05) * (0.4 + (y - top) / max(1, bottom - top))
        d.line([(x - length / 2, y), (x + length / 2, y)], fill=light if near_sun else dark, width=max(1, sc.lw - 1))


def _smoke(sc: Scene) -> Callable[[float, float, float], None]:
    def puff(x: float, y: float, s: float) -> None:
        rng = sc.rng
        drift = rng.choice((-1, 1))
        col = mix(sc.pal.cloud, sc.pal.hills[3], 0.3)
        for i in range(8):
            r = s * (0.08 + 0.05 * i)
            cx, cy = x + drift * s * 0.22 * i ** 1.3, y - s * 0.16 * i - r * 0.3
            sc.draw.ellipse((cx - r, cy - r * 0.7, cx + r, cy + r * 0.7), fill=(*col, max(40, 190 - 20 * i)))
    return puff


def _cluster_xs(rng: random.Random, cx: float, spread: float, n: int) -> list[float]:
    xs = sorted(cx + spread * rng.uniform(-1, 1) for _ in range(n))
    return xs


def _edge_x(sc: Scene) -> float:
    """An x position near the left or right edge, clear of the centred caption."""
    r = sc.rng
    return sc.W * (r.uniform(0.03, 0.2) if r.random() < 0.5 else r.uniform(0.8, 0.97))


def _place(sc: Scene, layer: int, x: float, fn: Callable[..., None], s: float, half_w: float | None = None, **kw: object) -> None:
    hw = s * 0.5 if half_w is None else half_w
    if layer == 1:
        lo, hi = sc.span
        x = min(max(x, lo + hw), hi - hw) if hi - lo > 2 * hw else (lo + hi) / 2
    y = sc.base(layer, x - hw, x + hw) + s * 0.06
    box = sc.reserved
    if box is not None and layer >= 2 and y - s * 0.6 > box[1] and box[0] - hw < x < box[2] + hw:
        # it would stand behind the caption: move it to the nearer side
        x = box[0] - hw - s * 0.2 if x - box[0] < box[2] - x else box[2] + hw + s * 0.2
        y = sc.base(layer, x - hw, x + hw) + s * 0.06
    fn(sc.pen(layer), x, y, s, **kw)


# --- era motifs: hooks called after each hill layer is laid ------------------------------------

Hook = Callable[[Scene, int], None]


def _flock(sc: Scene, layer: int, x: float, shepherd: bool = True) -> None:
    """A few sheep grazing around x, maybe with their shepherd."""
    r = sc.rng
    s = sc.scale(layer)
    n = r.randint(3, 7)
    for _ in range(n):
        _place(sc, layer, x + s * r.uniform(-1.8, 1.8), m.sheep, s * r.uniform(0.42, 0.52))
    if shepherd:
        _place(sc, layer, x + s * r.choice((-1, 1)) * r.uniform(1.9, 2.4), m.figure, s * 1.05, staff=True)


_HEROES: dict[str, tuple[Callable[..., None], ...]] = {
    "patriarchs": (m.palm, m.figure),
    "exodus": (m.figure, m.round_tree),
    "first-temple": (m.round_tree, m.cypress),
    "exile": (m.palm, m.figure),
    "roman": (m.cypress, m.column),
    "medieval": (m.round_tree, m.figure),
    "early-modern": (m.round_tree, m.figure),
    "modern": (m.round_tree, m.figure),
    "holocaust": (m.bare_tree,),
    "israel": (m.palm, m.cypress),
    "default": (m.round_tree, m.cypress),
}


def _hero(sc: Scene) -> None:
    """The 'close' shot: one large motif in the foreground, to a side of the caption."""
    r = sc.rng
    fn = r.choice(_HEROES.get(sc.pal.motif, _HEROES["default"]))
    s = sc.scale(3) * (1.25 if fn is m.figure else r.uniform(1.6, 2.2))
    x = sc.W * (r.uniform(0.1, 0.24) if r.random() < 0.5 else r.uniform(0.76, 0.9))
    _place(sc, 3, x, fn, s)


def _motifs(sc: Scene, layer: int) -> None:
    fn = _ERA_HOOKS.get(sc.pal.motif, _default_hook)
    fn(sc, layer)


def _default_hook(sc: Scene, layer: int) -> None:
    r, W = sc.rng, sc.W
    s = sc.scale(layer)
    if layer == 1:
        cx = sc.city_x
        for x in _cluster_xs(r, cx, W * 0.12, r.randint(3, 6)):
            _place(sc, 1, x, m.house, s)
        for _ in range(r.randint(2, 4)):
            _place(sc, 1, cx + W * r.uniform(-0.25, 0.25), m.round_tree, s * 0.9)
    elif layer == 2:
        for _ in range(r.randint(1, 3)):
            _place(sc, 2, W * r.uniform(0.05, 0.95), m.round_tree, s)
        if sc.variant < 0.3:
            _flock(sc, 2, W * r.uniform(0.2, 0.8))
        for _ in range(r.randint(0, 2)):
            _place(sc, 2, W * r.uniform(0.1, 0.9), m.figure, s * 0.9)
    elif layer == 3 and r.random() < 0.7:
        _place(sc, 3, _edge_x(sc), r.choice((m.round_tree, m.cypress)), s)


def _patriarchs_hook(sc: Scene, layer: int) -> None:
    r, W = sc.rng, sc.W
    s = sc.scale(layer)
    if layer == 1:
        cx = sc.city_x
        for x in _cluster_xs(r, cx, W * 0.1, r.randint(3, 5)):
            _place(sc, 1, x, m.tent, s * r.uniform(0.8, 1.1))
        for _ in range(r.randint(1, 3)):
            _place(sc, 1, cx + W * r.uniform(-0.22, 0.22), m.palm, s)
    elif layer == 2 and sc.variant < 0.35:
        _flock(sc, 2, W * r.uniform(0.2, 0.8))
    elif layer == 2 and sc.variant < 0.8:
        x = W * r.uniform(0.15, 0.85)
        side = r.choice((-1, 1))
        for _ in range(r.randint(1, 2)):
            _place(sc, 2, x, m.camel, s * 1.1)
            x += side * s * r.uniform(1.3, 1.8)
        for _ in range(r.randint(1, 3)):
            _place(sc, 2, x, m.figure, s * 1.15, staff=r.random() < 0.7)
            x += side * s * r.uniform(0.5, 0.9)
    elif layer == 2:  # a meeting under a tree
        x = W * r.uniform(0.2, 0.8)
        _place(sc, 2, x, r.choice((m.palm, m.round_tree)), s * 1.3)
        _place(sc, 2, x - s * 0.7, m.figure, s * 1.1, staff=True)
        _place(sc, 2, x + s * 0.6, m.figure, s * 1.0, staff=False)
    elif layer == 3 and r.random() < 0.6:
        _place(sc, 3, _edge_x(sc), m.palm, s)


def _exodus_hook(sc: Scene, layer: int) -> None:
    r, W = sc.rng, sc.W
    s = sc.scale(layer)
    if layer == 1:
        cx = sc.city_x
        for x in _cluster_xs(r, cx, W * 0.16, r.randint(4, 7)):
            _place(sc, 1, x, m.tent, s * r.uniform(0.7, 1.0))
    elif layer == 2 and sc.variant >= 0.55:
        if sc.variant < 0.8:
            _flock(sc, 2, W * r.uniform(0.2, 0.8))
        else:  # a leader with his staff, the people following far behind
            _place(sc, 2, W * r.uniform(0.2, 0.8), m.figure, s * 1.3, staff=True)
            x = W * r.uniform(0.1, 0.9)
            for _ in range(r.randint(4, 8)):
                _place(sc, 1, x + sc.scale(1) * r.uniform(-2.5, 2.5), m.figure, sc.scale(1) * r.uniform(0.6, 0.8))
    elif layer == 2:
        n = r.randint(5, 10)
        x = W * r.uniform(0.08, 0.45)
        direction = r.choice((-1, 1))
        lead = n - 1 if direction > 0 else 0
        xs = []
        for _i in range(n):
            xs.append(x)
            x += s * r.uniform(0.22, 0.75)
        for i, xx in enumerate(xs):
            size = s * (1.12 if i == lead else r.uniform(0.72, 1.0))
            _place(sc, 2, xx + (s * 0.4 * direction if i == lead else 0), m.figure, size, staff=(i == lead or r.random() < 0.2))
    elif layer == 3 and r.random() < 0.5:
        _place(sc, 3, _edge_x(sc), m.round_tree, s * 0.8)


def _first_temple_hook(sc: Scene, layer: int) -> None:
    r, W = sc.rng, sc.W
    s = sc.scale(layer)
    if layer == 1:
        cx = sc.city_x
        half = W * r.uniform(0.13, 0.2)
        y = sc.base(1, cx - half, cx + half)
        for x in _cluster_xs(r, cx, half * 0.9, r.randint(3, 6)):
            _place(sc, 1, x, m.flat_house, s * 0.8)
        m.temple(sc.pen(1), cx + half * r.uniform(-0.2, 0.2), sc.base(1, cx - s, cx + s) - s * 0.15, s * 1.1, pediment=False)
        m.wall(sc.pen(1), cx - half, cx + half, y + s * 0.2, s)
        for xx in (cx - half, cx + half):
            m.tower(sc.pen(1), xx, y + s * 0.2, s * 0.7, top="crenel")
        for _ in range(r.randint(2, 4)):
            _place(sc, 1, cx + W * r.uniform(-0.3, 0.3), m.cypress, s * 0.8)
    elif layer == 2:
        for _ in range(r.randint(2, 4)):
            _place(sc, 2, W * r.uniform(0.05, 0.95), m.round_tree, s)
        if sc.variant < 0.35:
            _flock(sc, 2, W * r.uniform(0.2, 0.8))
        else:
            for _ in range(r.randint(0, 2)):
                _place(sc, 2, W * r.uniform(0.15, 0.85), m.figure, s)
    elif layer == 3 and r.random() < 0.7:
        _place(sc, 3, _edge_x(sc), r.choice((m.round_tree, m.cypress)), s)


def _exile_hook(sc: Scene, layer: int) -> None:
    r, W = sc.rng, sc.W
    s = sc.scale(layer)
    if layer == 1:
        cx = sc.city_x
        if r.random() < 0.6:
            _place(sc, 1, cx, m.ziggurat, s * 1.2, half_w=s * 1.4)
        else:
            _place(sc, 1, cx, m.temple, s, half_w=s)
        for x in _cluster_xs(r, cx, W * 0.2, r.randint(3, 6)):
            if abs(x - cx) > s * 1.2:
                _place(sc, 1, x, m.flat_house, s * 0.7)
        for _ in range(r.randint(1, 3)):
            _place(sc, 1, cx + W * r.uniform(-0.3, 0.3), m.palm, s * 0.9)
    elif layer == 2:
        for _ in range(r.randint(1, 3)):
            _place(sc, 2, W * r.uniform(0.05, 0.95), m.palm, s)
        for _ in range(r.randint(1, 3)):
            _place(sc, 2, W * r.uniform(0.15, 0.85), m.figure, s * 0.95)
    elif layer == 3 and r.random() < 0.6:
        _place(sc, 3, _edge_x(sc), m.palm, s)


def _roman_hook(sc: Scene, layer: int) -> None:
    r, W = sc.rng, sc.W
    s = sc.scale(layer)
    if layer == 1:
        if sc.variant < 0.55:
            x0 = W * r.uniform(-0.1, 0.4)
            x1 = x0 + W * r.uniform(0.35, 0.55)
            m.aqueduct(sc.pen(1), x0, x1, sc.base(1, x0, x1) + s * 0.1, s)
        else:  # a colonnaded street
            x0 = W * r.uniform(0.0, 0.5)
            for k in range(r.randint(4, 9)):
                _place(sc, 1, x0 + k * s * 0.55, m.column, s * 0.8)
        tx = W * r.uniform(0.2, 0.8)
        _place(sc, 1, tx, m.temple, s * 0.9, half_w=s)
        for x in _cluster_xs(r, tx, W * 0.15, r.randint(2, 4)):
            if abs(x - tx) > s * 1.1:
                _place(sc, 1, x, m.flat_house, s * 0.7)
        for _ in range(r.randint(2, 5)):
            _place(sc, 1, W * r.uniform(0.05, 0.95), m.cypress, s * 0.9)
    elif layer == 2:
        cx = W * r.uniform(0.1, 0.9)
        for i in range(r.randint(1, 3)):
            _place(sc, 2, cx + i * s * 0.7, m.column, s)
        for _ in range(r.randint(1, 2)):
            _place(sc, 2, W * r.uniform(0.15, 0.85), m.figure, s)
    elif layer == 3 and r.random() < 0.7:
        _place(sc, 3, _edge_x(sc), m.cypress, s)


def _medieval_hook(sc: Scene, layer: int) -> None:
    r, W = sc.rng, sc.W
    s = sc.scale(layer)
    walled = sc.variant < 0.5 and sc.span[0] == float("-inf")
    if layer == 1 and not walled:  # an open village or a harbour town, a tall house of prayer among the roofs
        cx = sc.city_x
        xs = _cluster_xs(r, cx, W * 0.18, r.randint(4, 8))
        big = r.randrange(len(xs))
        for i, x in enumerate(xs):
            if i == big:
                _place(sc, 1, x, m.house, s * 1.3, roof="dome")
            elif r.random() < 0.2:
                _place(sc, 1, x, m.tower, s * 0.9, top=r.choice(("spire", "crenel")))
            else:
                _place(sc, 1, x, m.house, s * r.uniform(0.7, 0.9), roof="gable")
        for _ in range(r.randint(1, 3)):
            _place(sc, 1, cx + W * r.uniform(-0.3, 0.3), m.round_tree, s * 0.8)
    elif layer == 1:
        cx = sc.city_x
        half = W * r.uniform(0.14, 0.24)
        y = sc.base(1, cx - half, cx + half)
        xs = _cluster_xs(r, cx, half * 0.85, r.randint(4, 7))
        for i, x in enumerate(xs):
            if i % 3 == 1:
                _place(sc, 1, x, m.tower, s, top=r.choice(("crenel", "spire", "dome")))
            else:
                _place(sc, 1, x, m.house, s * 0.8, roof=r.choice(("gable", "gable", "dome")))
        m.wall(sc.pen(1), cx - half, cx + half, y + s * 0.25, s)
        for xx in (cx - half, cx + half):
            m.tower(sc.pen(1), xx, y + s * 0.25, s * 0.8, top="crenel")
    elif layer == 2:
        for _ in range(r.randint(2, 4)):
            _place(sc, 2, W * r.uniform(0.05, 0.95), m.round_tree, s)
        if 0.75 < sc.variant < 0.9:
            _flock(sc, 2, W * r.uniform(0.2, 0.8))
        for _ in range(r.randint(0, 2)):
            _place(sc, 2, W * r.uniform(0.15, 0.85), m.figure, s)
    elif layer == 3 and r.random() < 0.7:
        _place(sc, 3, _edge_x(sc), m.round_tree, s)


def _early_modern_hook(sc: Scene, layer: int) -> None:
    r, W = sc.rng, sc.W
    s = sc.scale(layer)
    if layer == 1:
        cx = sc.city_x
        xs = _cluster_xs(r, cx, W * 0.2, r.randint(5, 8))
        dome_at = r.randrange(len(xs))
        for i, x in enumerate(xs):
            _place(sc, 1, x, m.house, s * (1.15 if i == dome_at else 0.85), roof="dome" if i == dome_at else "gable")
        if r.random() < 0.6:
            _place(sc, 1, W * r.uniform(0.08, 0.92), m.windmill, s)
    elif layer == 2:
        for _ in range(r.randint(1, 3)):
            _place(sc, 2, W * r.uniform(0.05, 0.95), r.choice((m.round_tree, m.house)), s)
        for _ in range(r.randint(1, 2)):
            _place(sc, 2, W * r.uniform(0.15, 0.85), m.figure, s)
    elif layer == 3 and r.random() < 0.6:
        _place(sc, 3, _edge_x(sc), m.round_tree, s)


def _modern_hook(sc: Scene, layer: int) -> None:
    r, W = sc.rng, sc.W
    s = sc.scale(layer)
    lit_windows = sc.lighting in ("dusk", "night")
    if layer == 1:
        cx = sc.city_x
        for x in _cluster_xs(r, cx, W * 0.25, r.randint(4, 7)):
            if r.random() < 0.35:
                _place(sc, 1, x, m.factory, s, half_w=s, smoke=_smoke(sc))
            else:
                _place(sc, 1, x, m.block, s * 0.8, lit=lit_windows)
    elif layer == 2:
        if sc.variant < 0.6:
            m.poles(sc.pen(2), W * r.uniform(-0.05, 0.1), W * 1.05, lambda x: sc.ground(2, x) + s * 0.05, s * 1.1)
        for _ in range(r.randint(1, 3)):
            _place(sc, 2, W * r.uniform(0.05, 0.95), r.choice((m.house, m.round_tree)), s)
        for _ in range(r.randint(0, 2)):
            _place(sc, 2, W * r.uniform(0.15, 0.85), m.figure, s)
    elif layer == 3 and r.random() < 0.5:
        _place(sc, 3, _edge_x(sc), m.round_tree, s)


def _holocaust_hook(sc: Scene, layer: int) -> None:
    r, W = sc.rng, sc.W
    s = sc.scale(layer)
    if layer == 1:
        cx = sc.city_x
        xs = _cluster_xs(r, cx, W * 0.25, r.randint(3, 6))
        for x in xs:
            _place(sc, 1, x, m.barracks, s, half_w=s * 1.3)
        _place(sc, 1, xs[0] - s * 2.0, m.watchtower, s)
        if r.random() < 0.5:
            _place(sc, 1, xs[-1] + s * 2.0, m.watchtower, s)
    elif layer == 2:
        x0 = W * r.uniform(-0.05, 0.2)
        m.fence(sc.pen(2), x0, W * r.uniform(0.75, 1.05), lambda x: sc.ground(2, x) + s * 0.05, s)
        for _ in range(r.randint(1, 3)):
            _place(sc, 2, W * r.uniform(0.05, 0.95), m.bare_tree, s * 1.3)
    elif layer == 3:
        _place(sc, 3, _edge_x(sc), m.bare_tree, s * 1.4)


def _israel_hook(sc: Scene, layer: int) -> None:
    r, W = sc.rng, sc.W
    s = sc.scale(layer)
    if layer == 1:
        cx = sc.city_x
        for x in _cluster_xs(r, cx, W * 0.22, r.randint(5, 9)):
            if r.random() < 0.2:
                _place(sc, 1, x, m.block, s * 0.7)
            else:
                _place(sc, 1, x, m.flat_house, s * 0.8)
        for _ in range(r.randint(1, 3)):
            _place(sc, 1, cx + W * r.uniform(-0.3, 0.3), r.choice((m.palm, m.cypress)), s * 0.8)
    elif layer == 2:
        for _ in range(r.randint(1, 3)):
            _place(sc, 2, W * r.uniform(0.05, 0.95), r.choice((m.palm, m.flat_house, m.round_tree)), s)
        for _ in range(r.randint(0, 2)):
            _place(sc, 2, W * r.uniform(0.15, 0.85), m.figure, s)
    elif layer == 3 and r.random() < 0.7:
        _place(sc, 3, _edge_x(sc), m.palm, s)


_ERA_HOOKS: dict[str, Hook] = {
    "patriarchs": _patriarchs_hook,
    "exodus": _exodus_hook,
    "first-temple": _first_temple_hook,
    "exile": _exile_hook,
    "roman": _roman_hook,
    "medieval": _medieval_hook,
    "early-modern": _early_modern_hook,
    "modern": _modern_hook,
    "holocaust": _holocaust_hook,
    "israel": _israel_hook,
    "default": _default_hook,
}

#: chance that an era's scene is a shore (far hills, water, near bank) rather than a valley
_SHORE = {"medieval": 0.25, "exodus": 0.25, "exile": 0.5, "early-modern": 0.35, "israel": 0.55, "default": 0.2}


def _landscape(sc: Scene) -> None:
    W, H, S, rng, pal = sc.W, sc.H, sc.S, sc.rng, sc.pal
    below = H - sc.horizon
    motif = pal.motif
    shore = rng.random() < _SHORE.get(motif, 0.0)
    sc.variant = rng.random()
    sc.city_x = W * rng.uniform(0.25, 0.75)
    fracs = [0.0, 0.18, 0.42, 0.74]
    amps = [rng.uniform(0.07, 0.15), rng.uniform(0.05, 0.09), rng.uniform(0.04, 0.07), rng.uniform(0.04, 0.08)]
    if shore:
        fracs = [0.0, 0.18, 0.5, 0.8]
        amps[2] = 0.035
    peaks: list[tuple[float, float, float] | None] = [None, None, None, None]
    if motif == "exodus":
        peaks[0] = (W * rng.uniform(0.2, 0.8), S * rng.uniform(0.09, 0.14), S * rng.uniform(0.17, 0.26))
    if motif in ("first-temple", "medieval"):
        peaks[1] = (sc.city_x, S * rng.uniform(0.2, 0.3), S * rng.uniform(0.05, 0.09))
    rough = 1.0 if motif not in ("holocaust",) else 0.35
    sc.ridges = [
        _ridge(rng, W, sc.horizon + below * fracs[i] + S * 0.01, S * amps[i], rough * (1.2 if i == 0 else 0.8), peaks[i])
        for i in range(4)
    ]
    water_y = sc.horizon + S * 0.012
    headland: tuple[int, int] | None = None
    if shore:
        # layer 1 becomes a headland standing in the water, the city on it
        xs, ys = sc.ridges[1]
        half = W * rng.uniform(0.16, 0.28)
        sc.city_x = W * rng.uniform(0.2, 0.8)
        t = (xs - sc.city_x) / half
        env = np.clip(1 - t * t, 0, 1) ** 0.5
        top_y = float(ys.min())
        ys = water_y - (S * rng.uniform(0.025, 0.05) + (ys - top_y) * -0.6 + S * 0.01) * env
        ys = np.minimum(ys, water_y)
        sc.ridges[1] = (xs, ys)
        inside = np.nonzero(env > 0)[0]
        headland = (int(inside[0]), int(inside[-1])) if inside.size else None
        sc.span = (sc.city_x - half * 0.8, sc.city_x + half * 0.8)
    for i in range(4):
        xs, ys = sc.ridges[i]
        color = mix(pal.hills[i], pal.sky_horizon, _HAZE[i])
        ridge_pts = list(zip(xs.tolist(), ys.tolist()))
        if shore and i == 1:
            _water(sc, water_y, H + 1)
            if headland is None:
                continue
            a, b = headland
            ridge_pts = ridge_pts[max(0, a - 1): b + 2]
            pts = ridge_pts + [(ridge_pts[-1][0], water_y + S * 0.006), (ridge_pts[0][0], water_y + S * 0.006)]
        else:
            pts = ridge_pts + [(W * 1.05, H + 2), (-W * 0.05, H + 2)]
        sc.draw.polygon(pts, fill=color)
        # a lighter rim on the sunlit side
        sc.draw.line(ridge_pts, fill=(*mix(color, pal.sun, 0.35), 110), width=max(1, sc.lw))
        if sc.kind in ("sketch", "manuscript"):
            sc.pen(i).sketch_line(ridge_pts, alpha=int(170 - 100 * _HAZE[i]), width=max(1, int(sc.lw * (0.6 + 0.2 * i))))
        if i > 1 or (i == 1 and not shore):
            _hatch(sc, i, S * (0.04 + 0.03 * i))
        if shore and i == 1 and motif in ("israel", "early-modern", "default", "exile", "medieval"):
            p = sc.pen(1)
            lo = float(sc.ridges[2][1].min())
            for _ in range(rng.randint(1, 3)):
                by = rng.uniform(water_y + (lo - water_y) * 0.15, water_y + (lo - water_y) * 0.8)
                bx = W * rng.uniform(0.05, 0.95)
                if sc.span[0] - S * 0.05 < bx < sc.span[1] + S * 0.05:
                    bx = (bx + W * 0.5) % W  # not in front of the headland
                m.boat(p, bx, by, sc.scale(1) * (0.6 + 0.9 * (by - water_y) / max(1, lo - water_y)))
        _motifs(sc, i)
        if i == 3 and sc.shot == "close":
            _hero(sc)


# --- finishing ---------------------------------------------------------------------------------

def _blend(img: Image.Image, color: RGB, t: float) -> Image.Image:
    return Image.blend(img, Image.new("RGB", img.size, color), t)


def _painterly(img: Image.Image, nrng: np.random.Generator, S: int) -> Image.Image:
    """Soft oil-paint strokes: short thick dabs in colours sampled from the picture."""
    W, H = img.size
    f = max(1, min(3, round(S / 340)))
    small = img.resize((max(1, W // f), max(1, H // f)), Image.Resampling.BOX) if f > 1 else img.copy()
    w, h = small.size
    arr = np.asarray(small.filter(ImageFilter.GaussianBlur(1)))
    d = ImageDraw.Draw(small, "RGBA")
    s = max(2.0, S / f / 75)
    n = int(w * h / (s * s * 2.4))
    xs = nrng.uniform(0, w, n)
    ys = nrng.uniform(0, h, n)
    ang = nrng.normal(0.0, 0.3, n) + np.where(ys > h * 0.5, 0.0, -0.2)
    lens = s * nrng.uniform(1.6, 3.2, n)
    jit = nrng.integers(-8, 9, (n, 3))
    xi = np.clip(xs.astype(int), 0, w - 1)
    yi = np.clip(ys.astype(int), 0, h - 1)
    cols = np.clip(arr[yi, xi].astype(int) + jit, 0, 255).tolist()
    dx = (np.cos(ang) * lens / 2).tolist()
    dy = (np.sin(ang) * lens / 2).tolist()
    xs_l, ys_l = xs.tolist(), ys.tolist()
    width = max(2, int(s))
    line = d.line
    for i in range(n):
        c = cols[i]
        line([(xs_l[i] - dx[i], ys_l[i] - dy[i]), (xs_l[i] + dx[i], ys_l[i] + dy[i])], fill=(c[0], c[1], c[2], 150), width=width)
    out = small.resize((W, H), Image.Resampling.BILINEAR) if f > 1 else small
    return Image.blend(img, out, 0.75)


def _vignette(W: int, H: int, strength: float) -> Image.Image:
    """A radial mask, 0 at the centre rising to ``strength*255`` in the corners."""
    w, h = max(2, W // 8), max(2, H // 8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx / (w - 1)) * 2 - 1) ** 2 + ((yy / (h - 1)) * 2 - 1) ** 2) / math.sqrt(2)
    a = np.clip((r - 0.45) / 0.55, 0, 1) ** 1.6 * strength * 255
    return Image.fromarray(a.astype(np.uint8)).resize((W, H), Image.Resampling.BILINEAR)


def _deckle(W: int, H: int, S: int, rng: random.Random) -> Image.Image:
    """Mask of a painted area with irregular, soft edges (the unpainted margin of a sketch)."""
    def fn(d: ImageDraw.ImageDraw, k: float) -> None:
        w, h = W * k, H * k
        m_ = S * k * 0.035
        d.rectangle((m_, m_, w - m_, h - m_), fill=225)
        # nibble the edges
        for _ in range(60):
            side = rng.randrange(4)
            r = S * k * rng.uniform(0.01, 0.04)
            t = rng.random()
            x, y = [(t * w, m_), (t * w, h - m_), (m_, t * h), (w - m_, t * h)][side]
            d.ellipse((x - r, y - r, x + r, y + r), fill=0)
    return _soft(W, H, fn, S * 0.012)


#: paper / film texture per style: (fine octave cell size in px, its amplitude, broad wash amplitude)
_TEXTURE = {"sketch": (5, 2.4, 2.4), "manuscript": (5, 2.4, 2.4), "oil": (5, 1.8, 1.8), "photo": (2, 4.5, 1.2)}


def _paper(img: Image.Image, nrng: np.random.Generator, kind: str) -> Image.Image:
    """Paper tooth (or film grain for photos) over broad, soft washes."""
    W, H = img.size
    cell, fine_amp, low_amp = _TEXTURE[kind]
    lw, lh = max(2, W // cell), max(2, H // cell)
    low = nrng.normal(0.0, 1.0, (max(2, H // 40), max(2, W // 40))).astype(np.float32)
    low_up = np.asarray(Image.fromarray(low).resize((lw, lh), Image.Resampling.BICUBIC))
    fine = nrng.normal(0.0, 1.0, (lh, lw)).astype(np.float32)
    tex = 128.0 + low_amp * low_up + fine_amp * fine
    tex_img = Image.fromarray(np.clip(tex, 0, 255).astype(np.uint8)).resize((W, H), Image.Resampling.BICUBIC)
    return ImageChops.add(img, Image.merge("RGB", (tex_img, tex_img, tex_img)), 1.0, -128)


def _photo(img: Image.Image, S: int) -> Image.Image:
    """An old documentary print: soft focus, toned monochrome, more contrast, dark corners."""
    W, H = img.size
    gray = img.convert("L")
    if S >= 400:  # soft focus
        gray = gray.resize((W // 2, H // 2), Image.Resampling.BOX).resize((W, H), Image.Resampling.BILINEAR)
    # contrast around the middle, then a warm tone (red lifted, blue lowered)
    lut = [min(255, max(0, int(128 + (v - 128) * 1.15))) for v in range(256)]
    gray = gray.point(lut)
    toned = Image.merge("RGB", (gray.point(lambda v: min(255, int(v * 1.04 + 6))), gray, gray.point(lambda v: int(v * 0.9))))
    img = Image.blend(toned, img, 0.16)
    img.paste((12, 10, 8), (0, 0, W, H), _vignette(W, H, 0.75))
    return img


def _frame(img: Image.Image, pal: Palette, b: int) -> None:
    """An illuminated manuscript border, ``b`` pixels wide."""
    W, H = img.size
    d = ImageDraw.Draw(img, "RGBA")
    gold = _gold(pal)
    band = pal.accent2
    paper = pal.paper
    d.rectangle((0, 0, W - 1, H - 1), outline=paper, width=b)
    inner = max(2, int(b * 0.22))
    d.rectangle((inner, inner, W - 1 - inner, H - 1 - inner), outline=band, width=b - 2 * inner)
    lw = max(1, b // 10)
    d.rectangle((inner, inner, W - 1 - inner, H - 1 - inner), outline=gold, width=lw)
    d.rectangle((b - inner, b - inner, W - 1 - b + inner, H - 1 - b + inner), outline=gold, width=lw)
    d.rectangle((b, b, W - 1 - b, H - 1 - b), outline=pal.ink, width=max(1, lw))
    # a chain of gold lozenges and dots along the band
    mid = b / 2
    step = b * 1.1
    r = b * 0.2
    leaf = mix(pal.foliage, gold, 0.2)

    def lozenge(x: float, y: float) -> None:
        d.polygon([(x - r, y), (x, y - r * 1.3), (x + r, y), (x, y + r * 1.3)], fill=gold)
        d.ellipse((x - r * 0.35, y - r * 0.35, x + r * 0.35, y + r * 0.35), fill=band)

    x = b * 1.6
    k = 0
    while x < W - b * 1.4:
        if k % 2 == 0:
            lozenge(x, mid)
            lozenge(x, H - 1 - mid)
        else:
            for yy in (mid, H - 1 - mid):
                d.ellipse((x - r * 0.45, yy - r * 0.45, x + r * 0.45, yy + r * 0.45), fill=paper)
        x += step
        k += 1
    y = b * 1.6
    k = 0
    while y < H - b * 1.4:
        if k % 2 == 0:
            lozenge(mid, y)
            lozenge(W - 1 - mid, y)
        else:
            for xx in (mid, W - 1 - mid):
                d.ellipse((xx - r * 0.45, y - r * 0.45, xx + r * 0.45, y + r * 0.45), fill=paper)
        y += step
        k += 1
    # corner rosettes
    for cx, cy in ((mid, mid), (W - 1 - mid, mid), (mid, H - 1 - mid), (W - 1 - mid, H - 1 - mid)):
        R = b * 0.95
        d.rectangle((cx - R, cy - R, cx + R, cy + R), fill=band, outline=gold, width=lw)
        for j in range(8):
            a = j * math.pi / 4
            px, py = cx + math.cos(a) * R * 0.5, cy + math.sin(a) * R * 0.5
            pr = R * 0.28
            d.ellipse((px - pr, py - pr, px + pr, py + pr), fill=leaf if j % 2 else gold)
        d.ellipse((cx - R * 0.3, cy - R * 0.3, cx + R * 0.3, cy + R * 0.3), fill=gold, outline=paper, width=max(1, lw))


@dataclass
class Cartouche:
    box: tuple[float, float, float, float]
    lines: list[str]
    font: object
    line_h: float
    caption: str
    cap_font: object
    cap_h: float
    gap: float
    pad: float
    direction: str = "ltr"  # the title's paragraph direction, for every one of its lines
    cap_direction: str = "ltr"


def _layout_cartouche(W: int, H: int, title: str, caption: str, S: int, inset: int) -> Cartouche | None:
    if S < 96 or not (title or caption):
        return None
    max_w = W * 0.72 - 2 * inset
    pad = S * 0.024
    lines: list[str] = []
    font = None
    direction, cap_direction = base_direction(title), base_direction(caption)
    if title:
        font, lines = fit_title(title, max_w - 2 * pad, max(9, int(S * 0.042)), max(9, int(S * 0.03)), max_lines=3,
                                direction=direction)
    cap_font = get_font(max(8, int(S * 0.03)))
    line_h = float(getattr(font, "size", 11)) * 1.2 if lines else 0.0
    cap_h = float(getattr(cap_font, "size", 11)) * 1.25 if caption else 0.0
    gap = S * 0.012 if (lines and caption) else 0.0
    widths = [text_width(font, ln, direction) for ln in lines]
    if caption:
        widths.append(text_width(cap_font, caption, cap_direction) + S * 0.08)
    box_w = min(W - 2 * inset - 4, max(widths or [0.0]) + 2 * pad + S * 0.04)
    box_h = len(lines) * line_h + cap_h + gap + 2 * pad * 0.8
    bottom = H - inset - S * 0.035
    cx = W / 2
    return Cartouche((cx - box_w / 2, bottom - box_h, cx + box_w / 2, bottom), lines, font, line_h, caption, cap_font, cap_h,
                     gap, pad, direction, cap_direction)


def _draw_cartouche(img: Image.Image, pal: Palette, c: Cartouche, S: int) -> None:
    d = ImageDraw.Draw(img, "RGBA")
    x0, y0, x1, y1 = c.box
    cx = (x0 + x1) / 2
    radius = S * 0.018
    ink = pal.ink
    # a soft shadow, then the tablet with a double rule
    d.rounded_rectangle((x0 + S * 0.005, y0 + S * 0.007, x1 + S * 0.005, y1 + S * 0.007), radius, fill=(0, 0, 0, 45))
    d.rounded_rectangle((x0, y0, x1, y1), radius, fill=(*pal.paper, 232), outline=(*ink, 210), width=max(1, int(S / 420)))
    o = S * 0.007
    d.rounded_rectangle((x0 + o, y0 + o, x1 - o, y1 - o), max(1, radius - o), outline=(*pal.accent, 170), width=1)
    rr = S * 0.011
    ey = (y0 + y1) / 2
    for ex, sgn in ((x0, -1), (x1, 1)):
        d.polygon([(ex + sgn * rr * 1.6, ey), (ex, ey - rr), (ex - sgn * rr * 0.2, ey), (ex, ey + rr)], fill=(*pal.accent, 230))
    y = y0 + c.pad * 0.8
    for ln in c.lines:
        draw_text(d, (cx, y + c.line_h / 2), ln, c.font, (*ink, 255), c.direction)
        y += c.line_h
    if c.caption:
        y += c.gap
        if c.lines:
            rule = min((x1 - x0) * 0.3, S * 0.12)
            d.line([(cx - rule / 2, y - c.gap / 2), (cx + rule / 2, y - c.gap / 2)], fill=(*pal.accent, 160), width=1)
        draw_text(d, (cx, y + c.cap_h / 2), c.caption, c.cap_font, (*pal.accent, 255), c.cap_direction)


# --- entry point -------------------------------------------------------------------------------

def render_image(width: int, height: int, seed: object, title: object = None, year: object = None,
                 date: object = None, era: object = None, style: object = None) -> Image.Image:
    """Draw the sketch as a Pillow RGB image."""
    W, H = int(width), int(height)
    if W < 1 or H < 1:
        raise ValueError(f"sketch: size must be positive, got {W}x{H}")
    era_key = normalize_era(era)
    kind = style_kind(style)
    title_s = "" if title is None else str(title)
    rng, nrng = _rngs(seed, title_s, era_key, kind)
    base_pal = PALETTES[era_key]
    lighting = base_pal.lighting or rng.choices(("day", "dusk", "night"), (0.56, 0.32, 0.12))[0]
    pal = lit(base_pal, lighting)
    if kind == "manuscript":  # a deep, painted ground behind the gold lattice
        pal = replace(pal, sky_top=mix(pal.accent2, pal.sky_top, 0.25), sky_horizon=mix(pal.sky_horizon, pal.paper, 0.3))
    elif kind == "photo":  # the caption of a print: neutral card, grey ink
        pal = replace(pal, paper=(238, 234, 224), ink=(40, 38, 36), accent=(110, 100, 88))
    S = min(W, H)
    # tall pictures put the horizon lower, so the land is not lost under a tower of sky
    tall = min(1.0, max(0.0, (H / W - 1.0) / 1.0))
    shot = rng.choice(("panorama", "panorama", "high", "low", "close"))
    lo, hi = {"panorama": (0.44, 0.54), "high": (0.34, 0.4), "low": (0.58, 0.64), "close": (0.46, 0.56)}[shot]
    horizon = H * (rng.uniform(lo, hi) + 0.1 * tall)
    inset = max(4, int(S * 0.06)) if kind == "manuscript" else 0
    cart = _layout_cartouche(W, H, sanitize(title_s), format_year(year, date), S, inset)
    img = Image.new("RGB", (W, H))
    sc = Scene(img=img, draw=ImageDraw.Draw(img, "RGBA"), W=W, H=H, S=S, rng=rng, pal=pal, kind=kind,
               lighting=lighting, horizon=horizon, lw=max(1, int(round(S / 380))), ridges=[],
               reserved=cart.box if cart is not None else None, shot=shot)
    sc.img = _sky_image(sc)
    sc.draw = ImageDraw.Draw(sc.img, "RGBA")
    if kind == "manuscript":
        _diaper(sc)
    _celestial(sc)
    _birds(sc)
    _landscape(sc)
    img = sc.img
    if kind == "sketch":
        paper = Image.new("RGB", (W, H), pal.paper)
        paper.paste(img, (0, 0), _deckle(W, H, S, rng))  # the mask's 225 leaves a light wash of paper
        img = paper
    elif kind == "oil":
        img = _painterly(img, nrng, S)
        img.paste(shade(pal.hills[3], 0.5), (0, 0, W, H), _vignette(W, H, 0.35))
    elif kind == "photo":
        img = _photo(img, S)
    elif kind == "manuscript":
        img = _blend(img, pal.paper, 0.1)
    if kind != "oil":  # the brush strokes are the oil's texture
        img = _paper(img, nrng, kind)
    if kind == "manuscript":
        _frame(img, pal, inset)
    if cart is not None:
        _draw_cartouche(img, pal, cart, S)
    return img


def render_sketch(width: int, height: int, seed: object, title: object = None, year: object = None,
                  date: object = None, era: object = None, style: object = None) -> bytes:
    """Render a draft illustration and return it as PNG bytes (deterministic)."""
    img = render_image(width, height, seed, title, year, date, era, style)
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL, compress_type=zlib.Z_RLE)
    return buf.getvalue()
