"""Text for the sketch renderer: the built-in font, glyph fallbacks, wrapping, captions.

Pillow's built-in font (``ImageFont.load_default(size=...)``, a scalable
FreeType font since Pillow 10.1) covers basic Latin only. Characters it
cannot draw are transliterated where that is obvious (``é`` -> ``e``,
``—`` -> ``-``) and dropped otherwise, so Hebrew or emoji in a title never
produce tofu boxes and never raise.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any

from PIL import ImageFont

_local = threading.local()
_support: dict[str, bool] = {}
_support_lock = threading.Lock()
_PROBE_SIZE = 24

#: transliterations for characters the built-in font lacks
_FALLBACK = {
    "\u2013": "-", "\u2014": "-", "\u2012": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u05f3": "'", "\u05f4": '"',  # Hebrew geresh / gershayim
    "\u00ab": '"', "\u00bb": '"', "\u2039": "'", "\u203a": "'",
    "\u2026": "...", "\u00b7": "-", "\u2022": "-",
    "\u00df": "ss", "\u00e6": "ae", "\u00c6": "AE", "\u0153": "oe", "\u0152": "OE",
    "\u00f8": "o", "\u00d8": "O", "\u0142": "l", "\u0141": "L", "\u0111": "d", "\u0110": "D",
    "\u00fe": "th", "\u00de": "Th", "\u00f0": "d", "\u00d0": "D", "\u0131": "i",
}

FontT = Any  # ImageFont.FreeTypeFont | ImageFont.ImageFont


def get_font(size: int) -> FontT:
    """The built-in font at ``size`` px, cached per thread (FreeType faces are not thread-safe)."""
    cache: dict[int, FontT] | None = getattr(_local, "fonts", None)
    if cache is None:
        cache = _local.fonts = {}
    size = max(6, int(size))
    font = cache.get(size)
    if font is None:
        try:
            font = ImageFont.load_default(size=size)
        except Exception:  # Pillow < 10.1 or no FreeType: fixed-size bitmap font
            font = ImageFont.load_default()
        cache[size] = font
    return font


def is_scalable(font: FontT) -> bool:
    return isinstance(font, ImageFont.FreeTypeFont)


def _mask_signature(font: FontT, ch: str) -> tuple[tuple[int, int], bytes]:
    m = font.getmask(ch)
    return m.size, bytes(m)


def can_render(ch: str) -> bool:
    """Whether the built-in font has a real glyph for ``ch`` (not the .notdef box)."""
    hit = _support.get(ch)
    if hit is not None:
        return hit
    try:
        font = get_font(_PROBE_SIZE)
        if ch == " ":
            ok = True
        elif not is_scalable(font):
            ok = 32 <= ord(ch) < 127
        else:
            notdef = getattr(_local, "notdef", None)
            if notdef is None:
                notdef = _local.notdef = _mask_signature(font, "\ue000")
            sig = _mask_signature(font, ch)
            ok = sig != notdef and ord(ch) >= 32
    except Exception:
        ok = False
    with _support_lock:
        _support[ch] = ok
    return ok


def sanitize(text: object) -> str:
    """Keep only what the built-in font can draw; '' when nothing readable is left."""
    if text is None:
        return ""
    s = unicodedata.normalize("NFC", str(text))
    out: list[str] = []
    for ch in s:
        if ch.isspace():
            out.append(" ")
            continue
        if unicodedata.category(ch)[0] == "C":  # controls, format (ZWJ, marks), private use
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


def text_width(font: FontT, text: str) -> float:
    try:
        return float(font.getlength(text))
    except Exception:
        box = font.getbbox(text)
        return float(box[2] - box[0])


def wrap(font: FontT, text: str, max_width: float, max_lines: int) -> tuple[list[str], bool]:
    """Greedy word wrap. Returns the lines and whether everything fitted."""
    words = text.split()
    lines: list[str] = []
    cur = ""
    i = 0
    while i < len(words):
        w = words[i]
        cand = f"{cur} {w}" if cur else w
        if text_width(font, cand) <= max_width:
            cur = cand
            i += 1
            continue
        if cur:
            lines.append(cur)
            cur = ""
            continue
        # a single word wider than the line: break it
        cut = len(w)
        while cut > 1 and text_width(font, w[:cut]) > max_width:
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
    while last and text_width(font, last + "...") > max_width:
        last = last[:-1].rstrip()
    kept[-1] = (last + "...") if last else "..."
    return kept, False


def fit_title(text: str, max_width: float, size: int, min_size: int, max_lines: int = 3) -> tuple[FontT, list[str]]:
    """The largest font size (from ``size`` down to ``min_size``) at which ``text`` wraps into ``max_lines``."""
    s = size
    while True:
        font = get_font(s)
        lines, ok = wrap(font, text, max_width, max_lines)
        if ok or s <= min_size or not is_scalable(font):
            return font, lines
        s = max(min_size, int(s * 0.88))
