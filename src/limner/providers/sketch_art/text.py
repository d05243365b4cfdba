"""Text for the sketch renderer: the bundled font, bidi layout, glyph fallbacks, wrapping, captions.

Captions are drawn with a subset of DejaVu Sans bundled in ``fonts/`` (Latin,
Latin-1, Latin Extended-A, Greek, Cyrillic, Hebrew, General Punctuation; see
``fonts/README.md``). Characters it cannot draw are transliterated where that
is obvious (``ș`` -> ``s``, ``→`` -> ``->``) and dropped otherwise, so emoji or a script the
font lacks never produce tofu boxes and never raise.

Right-to-left text (Hebrew) is laid out by Pillow's raqm engine (FriBiDi for
the bidi algorithm, HarfBuzz for shaping and mark positioning) when Pillow has
it. Without raqm the basic layout draws glyphs in the order given, so each
line is first put into visual order by :func:`visual_order`, a simplified
Unicode bidi algorithm without shaping; that is reported by ``limner doctor``
(:func:`layout_report`) and logged once, never silent.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from importlib import resources
from io import BytesIO

from PIL import ImageDraw, ImageFont, features

log = logging.getLogger("limner.providers.sketch")

#: the bundled caption font (a DejaVu Sans subset; licence and recipe in fonts/)
FONT_FILE = "DejaVuSans-subset.ttf"

_local = threading.local()
_support: dict[str, bool] = {}
_support_lock = threading.Lock()
_warned_lock = threading.Lock()
_warned = False
_PROBE_SIZE = 24

#: transliterations for characters the bundled font lacks (the rest fall back to their NFKD base letters)
_FALLBACK = {
    "\u2190": "<-", "\u2192": "->", "\u2194": "<->", "\u21d2": "=>",
    "\u2122": "TM", "\u2116": "No.",
}

FontT = ImageFont.FreeTypeFont


@functools.cache
def _font_bytes() -> bytes:
    return resources.files(__package__).joinpath("fonts", FONT_FILE).read_bytes()


@functools.cache
def has_raqm() -> bool:
    """Whether Pillow has the raqm layout engine (libraqm with FriBiDi): bidi, shaping, mark positioning."""
    try:
        return bool(features.check_feature("raqm"))
    except Exception:  # pragma: no cover - a Pillow without the FreeType module at all
        return False


def layout_report() -> str:
    """How captions are laid out here, for ``limner doctor``."""
    if has_raqm():
        return "captions laid out with raqm (bidi and shaping: Hebrew and other right-to-left titles are drawn correctly)"
    return ("captions: Pillow has no raqm layout (libraqm/libfribidi not found), so right-to-left titles are put in "
            "order by Limner's simplified bidi, without shaping; install FriBiDi (apt install libfribidi0, "
            "brew install fribidi) for full layout")


def _load(size: int, raqm: bool) -> FontT:
    engine = ImageFont.Layout.RAQM if raqm else ImageFont.Layout.BASIC
    return ImageFont.truetype(BytesIO(_font_bytes()), size, layout_engine=engine)


def get_font(size: int) -> FontT:
    """The bundled font at ``size`` px, cached per thread (FreeType faces are not thread-safe)."""
    cache: dict[tuple[int, bool], FontT] | None = getattr(_local, "fonts", None)
    if cache is None:
        cache = _local.fonts = {}
    key = (max(6, int(size)), has_raqm())
    font = cache.get(key)
    if font is None:
        font = cache[key] = _load(*key)
    return font


def _probe_font() -> FontT:
    # the basic layout maps one character to one glyph: no shaper inserts a dotted circle or decomposes,
    # so "is this the .notdef box" is a clean question
    font: FontT | None = getattr(_local, "probe", None)
    if font is None:
        font = _local.probe = _load(_PROBE_SIZE, False)
    return font


def _mask_signature(font: FontT, ch: str) -> tuple[tuple[int, int], bytes]:
    m = font.getmask(ch)
    return m.size, bytes(m)


def can_render(ch: str) -> bool:
    """Whether the bundled font has a real glyph for ``ch`` (not the .notdef box)."""
    hit = _support.get(ch)
    if hit is not None:
        return hit
    try:
        if ch == " ":
            ok = True
        else:
            font = _probe_font()
            notdef = getattr(_local, "notdef", None)
            if notdef is None:
                notdef = _local.notdef = _mask_signature(font, "\ue000")
            ok = ord(ch) >= 32 and _mask_signature(font, ch) != notdef
    except Exception:
        ok = False
    with _support_lock:
        _support[ch] = ok
    return ok


def sanitize(text: object) -> str:
    """Keep only what the bundled font can draw; '' when nothing readable is left."""
    if text is None:
        return ""
    s = unicodedata.normalize("NFC", str(text))
    out: list[str] = []
    for ch in s:
        if ch.isspace():
            out.append(" ")
            continue
        if unicodedata.category(ch)[0] == "C":  # controls, format (ZWJ, bidi controls), private use
            continue
        if can_render(ch):
            out.append(ch)
            continue
        alt = _FALLBACK.get(ch)
        if alt is None:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            alt = base if base and base != ch else ""
        out.append("".join(c for c in alt if can_render(c)))
    t = " ".join("".join(out).split())
    # tidy what dropped characters leave behind: empty brackets / quotes, stray separators
    for _ in range(3):
        t2 = re.sub(r"\(\s*\)|\[\s*\]|\"\s*\"|'\s*'", "", t)
        t2 = re.sub(r"\s+([,.;:!?)])", r"\1", t2)
        t2 = re.sub(r"^[\s\-:;,.|/]+|[\s\-:;,|/]+$", "", t2)
        t2 = " ".join(t2.split())
        if t2 == t:
            break
        t = t2
    if not any(c.isalnum() for c in t):
        return ""
    return t


def format_year(year: object, date: object = None) -> str:
    """The caption under the title: ``date`` when given, else ``"586 BCE"`` / ``"70 CE"``."""
    if date is not None and not isinstance(date, bool):
        d = sanitize(date)
        if d:
            return d
    if year is None or isinstance(year, bool):
        return ""
    try:
        y = int(year)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return ""
    # same wording as the catalogue's year label
    return f"{-y} BCE" if y < 0 else f"{y} CE"


# --- bidi --------------------------------------------------------------------------------------

def base_direction(text: str) -> str:
    """The paragraph direction of ``text`` (Unicode bidi rules P2-P3): that of its first strong
    character, ``"ltr"`` when it has none."""
    for ch in text:
        t = unicodedata.bidirectional(ch)
        if t == "L":
            return "ltr"
        if t in ("R", "AL"):
            return "rtl"
    return "ltr"


def is_rtl_text(text: str) -> bool:
    return any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text)


_MIRROR = dict(zip("()[]{}<>«»‹›", ")(][}{><»«›‹"))
_NUMBER = ("EN", "AN")


def visual_order(text: str, direction: str) -> str:
    """``text`` (one line, in logical order) in left-to-right display order, for the basic layout.

    A simplified Unicode bidi algorithm (UAX #9) for one line without explicit embeddings (sanitize
    drops bidi controls): weak types W1-W7, neutrals N1-N2, implicit levels I1-I2, reordering L2 and
    bracket mirroring L4. Combining marks stay after their base character. It does no shaping, so it
    is right for Hebrew and wrong for scripts that join (Arabic), which the bundled font lacks anyway.
    """
    if not is_rtl_text(text) and direction != "rtl":
        return text
    e = "R" if direction == "rtl" else "L"
    clusters: list[str] = []
    for ch in text:
        if clusters and unicodedata.combining(ch):
            clusters[-1] += ch
        else:
            clusters.append(ch)
    raw = [unicodedata.bidirectional(c[0]) or "L" for c in clusters]
    types = [t if t in ("L", "R", "AL", "EN", "AN", "ES", "ET", "CS") else ("NSM" if t == "NSM" else "N") for t in raw]
    n = len(types)
    # W1: a lone mark (only possible first) takes the paragraph's direction
    types = [e if t == "NSM" else t for t in types]
    # W2, W3: European digits after Arabic letters are Arabic numbers; AL -> R
    last_strong = e
    for i, t in enumerate(types):
        if t in ("L", "R", "AL"):
            last_strong = t
        elif t == "EN" and last_strong == "AL":
            types[i] = "AN"
    types = ["R" if t == "AL" else t for t in types]
    # W4: one separator between two numbers of a kind joins them
    for i in range(1, n - 1):
        a, b = types[i - 1], types[i + 1]
        if types[i] == "ES" and a == b == "EN":
            types[i] = "EN"
        elif types[i] == "CS" and a == b and a in _NUMBER:
            types[i] = a
    # W5: terminators (%, currency signs) next to European digits are European digits
    for i in range(n):
        if types[i] == "ET":
            j = i
            while j < n and types[j] == "ET":
                j += 1
            if (i > 0 and types[i - 1] == "EN") or (j < n and types[j] == "EN"):
                for k in range(i, j):
                    types[k] = "EN"
    # W6: other separators are neutral
    types = ["N" if t in ("ES", "ET", "CS") else t for t in types]
    # W7: European digits after Latin are Latin
    last_strong = e
    for i, t in enumerate(types):
        if t in ("L", "R"):
            last_strong = t
        elif t == "EN" and last_strong == "L":
            types[i] = "L"
    # N1, N2: neutrals between the same direction take it (digits count as R), else the paragraph's
    i = 0
    while i < n:
        if types[i] != "N":
            i += 1
            continue
        j = i
        while j < n and types[j] == "N":
            j += 1
        before = e if i == 0 else ("R" if types[i - 1] in _NUMBER else types[i - 1])
        after = e if j == n else ("R" if types[j] in _NUMBER else types[j])
        fill = before if before == after else e
        for k in range(i, j):
            types[k] = fill
        i = j
    # I1, I2: embedding levels
    if e == "L":
        levels = [0 if t == "L" else (1 if t == "R" else 2) for t in types]
    else:
        levels = [1 if t == "R" else 2 for t in types]
    # L2: from the highest level down to the lowest odd one, reverse every run at that level or above
    order = list(range(n))
    top, low = max(levels), min(lv for lv in levels if lv % 2) if any(lv % 2 for lv in levels) else 1
    for lv in range(top, low - 1, -1):
        i = 0
        while i < n:
            if levels[order[i]] < lv:
                i += 1
                continue
            j = i
            while j < n and levels[order[j]] >= lv:
                j += 1
            order[i:j] = order[i:j][::-1]
            i = j
    # L4: mirrored brackets in right-to-left runs
    out = []
    for idx in order:
        c = clusters[idx]
        if levels[idx] % 2 and c[0] in _MIRROR:
            c = _MIRROR[c[0]] + c[1:]
        out.append(c)
    return "".join(out)


def _warn_basic_layout(text: str) -> None:
    global _warned
    if _warned or not is_rtl_text(text):
        return
    with _warned_lock:
        if _warned:
            return
        _warned = True
    log.warning("sketch: %s", layout_report())


def _laid_out(text: str, direction: str) -> tuple[str, dict[str, str]]:
    """What to hand Pillow for one line: the text and the keyword arguments for its layout engine."""
    if has_raqm():
        return text, {"direction": direction}
    _warn_basic_layout(text)
    return visual_order(text, direction), {}


def text_width(font: FontT, text: str, direction: str = "ltr") -> float:
    s, kw = _laid_out(text, direction)
    return float(font.getlength(s, **kw))


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: FontT,
              fill: tuple[int, ...], direction: str = "ltr", anchor: str = "mm") -> None:
    """Draw one line (logical order) with the layout engine at hand."""
    s, kw = _laid_out(text, direction)
    draw.text(xy, s, font=font, fill=fill, anchor=anchor, **kw)


# --- wrapping ----------------------------------------------------------------------------------

def wrap(font: FontT, text: str, max_width: float, max_lines: int, direction: str = "ltr") -> tuple[list[str], bool]:
    """Greedy word wrap in logical order (so right-to-left lines wrap as they read). Returns the lines
    and whether everything fitted."""
    words = text.split()
    lines: list[str] = []
    cur = ""
    i = 0
    while i < len(words):
        w = words[i]
        cand = f"{cur} {w}" if cur else w
        if text_width(font, cand, direction) <= max_width:
            cur = cand
            i += 1
            continue
        if cur:
            lines.append(cur)
            cur = ""
            continue
        # a single word wider than the line: break it, never between a letter and its marks
        cut = len(w)
        while cut > 1 and (text_width(font, w[:cut], direction) > max_width or unicodedata.combining(w[cut:cut + 1] or "a")):
            cut -= 1
        lines.append(w[:cut])
        words[i] = w[cut:]
        if not words[i]:
            i += 1
    if cur:
        lines.append(cur)
    if len(lines) <= max_lines:
        return lines, True
    kept = lines[:max_lines]
    last = kept[-1]
    while last and text_width(font, last + "...", direction) > max_width:
        last = last[:-1].rstrip()
    kept[-1] = (last + "...") if last else "..."
    return kept, False


def fit_title(text: str, max_width: float, size: int, min_size: int, max_lines: int = 3,
              direction: str = "ltr") -> tuple[FontT, list[str]]:
    """The largest font size (from ``size`` down to ``min_size``) at which ``text`` wraps into ``max_lines``."""
    s = size
    while True:
        font = get_font(s)
        lines, ok = wrap(font, text, max_width, max_lines, direction)
        if ok or s <= min_size:
            return font, lines
        s = max(min_size, int(s * 0.88))
