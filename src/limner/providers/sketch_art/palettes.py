"""Era palettes and time-of-day lighting for the sketch renderer."""

from __future__ import annotations

from dataclasses import dataclass, replace

RGB = tuple[int, int, int]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """Linear blend of two colours: ``t=0`` gives ``a``, ``t=1`` gives ``b``."""
    t = 0.0 if t < 0 else 1.0 if t > 1 else t
    return (
        int(round(a[0] + (b[0] - a[0]) * t)),
        int(round(a[1] + (b[1] - a[1]) * t)),
        int(round(a[2] + (b[2] - a[2]) * t)),
    )


def shade(c: RGB, f: float) -> RGB:
    """Darken (``f < 1``) or lighten (``f > 1``) a colour."""
    if f <= 1:
        return mix((0, 0, 0), c, f)
    return mix(c, (255, 255, 255), f - 1)


@dataclass(frozen=True)
class Palette:
    sky_top: RGB
    sky_horizon: RGB
    sun: RGB
    #: hill colours, far to near
    hills: tuple[RGB, RGB, RGB, RGB]
    ink: RGB
    paper: RGB
    #: cartouche caption, ornaments
    accent: RGB
    #: manuscript frame band
    accent2: RGB
    #: building walls (lit side) and their shadow
    stone: RGB
    foliage: RGB
    water: RGB
    cloud: RGB = (250, 246, 236)
    #: which set of motifs the scene draws
    motif: str = "default"
    #: forced lighting ("overcast") or None for a seeded choice
    lighting: str | None = None


PALETTES: dict[str, Palette] = {
    "patriarchs": Palette(
        sky_top=(150, 184, 204), sky_horizon=(246, 222, 176), sun=(255, 236, 186),
        hills=((222, 184, 128), (204, 156, 96), (176, 124, 70), (136, 90, 50)),
        ink=(74, 48, 28), paper=(246, 236, 214), accent=(176, 86, 40), accent2=(150, 70, 36),
        stone=(232, 206, 160), foliage=(112, 122, 62), water=(120, 160, 170), motif="patriarchs",
    ),
    "exodus-and-judges": Palette(
        sky_top=(112, 104, 142), sky_horizon=(246, 182, 122), sun=(255, 214, 150),
        hills=((206, 138, 104), (184, 110, 78), (150, 84, 58), (104, 58, 42)),
        ink=(66, 36, 30), paper=(245, 232, 212), accent=(170, 64, 42), accent2=(120, 50, 40),
        stone=(226, 184, 140), foliage=(104, 116, 64), water=(70, 130, 150), motif="exodus",
    ),
    "first-temple": Palette(
        sky_top=(78, 114, 168), sky_horizon=(238, 214, 170), sun=(255, 238, 190),
        hills=((176, 170, 130), (146, 142, 98), (114, 116, 72), (80, 86, 52)),
        ink=(52, 44, 30), paper=(244, 236, 216), accent=(186, 140, 46), accent2=(60, 80, 130),
        stone=(234, 216, 176), foliage=(70, 96, 56), water=(90, 130, 160), motif="first-temple",
    ),
    "exile-and-second-temple": Palette(
        sky_top=(66, 82, 138), sky_horizon=(224, 184, 160), sun=(250, 222, 180),
        hills=((170, 140, 146), (142, 112, 124), (110, 86, 102), (74, 60, 76)),
        ink=(40, 34, 56), paper=(242, 234, 220), accent=(44, 74, 150), accent2=(40, 62, 130),
        stone=(220, 196, 160), foliage=(86, 108, 70), water=(88, 120, 160), motif="exile",
    ),
    "roman-and-talmudic": Palette(
        sky_top=(122, 158, 192), sky_horizon=(240, 222, 196), sun=(255, 240, 206),
        hills=((196, 164, 134), (172, 132, 104), (138, 98, 76), (98, 70, 54)),
        ink=(62, 40, 32), paper=(246, 238, 224), accent=(168, 62, 42), accent2=(130, 44, 36),
        stone=(238, 228, 210), foliage=(64, 92, 56), water=(96, 140, 170), motif="roman",
    ),
    "medieval": Palette(
        sky_top=(196, 178, 128), sky_horizon=(244, 230, 192), sun=(255, 240, 190),
        hills=((186, 168, 118), (158, 138, 90), (126, 106, 68), (88, 74, 48)),
        ink=(60, 42, 24), paper=(240, 226, 190), accent=(184, 142, 44), accent2=(128, 34, 34),
        stone=(226, 206, 160), foliage=(86, 100, 56), water=(110, 130, 130), motif="medieval",
    ),
    "early-modern": Palette(
        sky_top=(168, 142, 108), sky_horizon=(234, 214, 180), sun=(250, 232, 190),
        hills=((172, 144, 110), (144, 114, 84), (112, 86, 62), (78, 58, 42)),
        ink=(58, 40, 26), paper=(238, 224, 196), accent=(140, 88, 44), accent2=(96, 60, 34),
        stone=(214, 190, 150), foliage=(96, 88, 56), water=(128, 126, 112), motif="early-modern",
    ),
    "modern": Palette(
        sky_top=(92, 114, 146), sky_horizon=(226, 206, 184), sun=(248, 226, 190),
        hills=((130, 136, 146), (104, 110, 120), (78, 84, 94), (54, 56, 64)),
        ink=(34, 36, 44), paper=(240, 236, 228), accent=(190, 112, 56), accent2=(60, 70, 96),
        stone=(196, 178, 160), foliage=(72, 94, 70), water=(96, 118, 140), motif="modern",
    ),
    "holocaust": Palette(
        sky_top=(118, 118, 120), sky_horizon=(192, 190, 184), sun=(214, 212, 204),
        hills=((150, 150, 148), (124, 124, 122), (98, 98, 97), (66, 66, 66)),
        ink=(30, 30, 30), paper=(226, 224, 218), accent=(96, 92, 84), accent2=(70, 70, 70),
        stone=(150, 146, 138), foliage=(84, 84, 80), water=(120, 122, 124), cloud=(206, 204, 200),
        motif="holocaust", lighting="overcast",
    ),
    "state-of-israel": Palette(
        sky_top=(58, 122, 194), sky_horizon=(226, 236, 246), sun=(255, 250, 232),
        hills=((196, 206, 214), (176, 184, 170), (146, 156, 130), (104, 118, 92)),
        ink=(24, 44, 84), paper=(246, 248, 250), accent=(28, 82, 170), accent2=(28, 82, 170),
        stone=(246, 244, 236), foliage=(64, 112, 70), water=(52, 120, 182), cloud=(255, 255, 255),
        motif="israel",
    ),
    "default": Palette(
        sky_top=(128, 160, 194), sky_horizon=(238, 228, 206), sun=(255, 240, 200),
        hills=((170, 174, 150), (140, 150, 116), (108, 122, 86), (76, 90, 60)),
        ink=(50, 46, 40), paper=(244, 238, 226), accent=(150, 92, 52), accent2=(90, 70, 50),
        stone=(228, 212, 182), foliage=(72, 100, 60), water=(100, 140, 170), motif="default",
    ),
}

#: a few spellings people use for the same eras
ALIASES: dict[str, str] = {
    "patriarch": "patriarchs",
    "exodus": "exodus-and-judges",
    "judges": "exodus-and-judges",
    "exodus-judges": "exodus-and-judges",
    "first-temple-period": "first-temple",
    "exile": "exile-and-second-temple",
    "second-temple": "exile-and-second-temple",
    "roman": "roman-and-talmudic",
    "talmudic": "roman-and-talmudic",
    "roman-talmudic": "roman-and-talmudic",
    "middle-ages": "medieval",
    "early-modern-period": "early-modern",
    "shoah": "holocaust",
    "israel": "state-of-israel",
    "state-of-israel-period": "state-of-israel",
}


def normalize_era(era: object) -> str:
    """Map an era name onto a palette key; unknown or missing eras give ``"default"``."""
    if not isinstance(era, str):
        return "default"
    key = "-".join(era.strip().lower().replace("_", " ").replace("&", " and ").split())
    key = ALIASES.get(key, key)
    return key if key in PALETTES else "default"


def lit(p: Palette, lighting: str) -> Palette:
    """The palette under a given light: ``day``, ``dusk``, ``night`` or ``overcast``."""
    if lighting == "dusk":
        return replace(
            p,
            sky_top=mix(p.sky_top, (96, 84, 132), 0.35),
            sky_horizon=mix(p.sky_horizon, (250, 160, 100), 0.45),
            sun=mix(p.sun, (255, 190, 120), 0.5),
            hills=tuple(mix(h, (110, 70, 90), 0.12 + 0.06 * i) for i, h in enumerate(p.hills)),  # type: ignore[arg-type]
            cloud=mix(p.cloud, (250, 190, 160), 0.5),
        )
    if lighting == "night":
        return replace(
            p,
            sky_top=mix(p.sky_top, (14, 20, 46), 0.8),
            sky_horizon=mix(p.sky_horizon, (70, 74, 112), 0.65),
            sun=(238, 236, 220),
            hills=tuple(mix(h, (26, 28, 46), 0.45 + 0.08 * i) for i, h in enumerate(p.hills)),  # type: ignore[arg-type]
            stone=mix(p.stone, (60, 64, 90), 0.45),
            foliage=mix(p.foliage, (20, 24, 40), 0.5),
            water=mix(p.water, (30, 36, 70), 0.5),
            cloud=mix(p.cloud, (90, 96, 130), 0.6),
        )
    if lighting == "overcast":
        return replace(p, sun=mix(p.sun, p.sky_horizon, 0.55))
    return p
