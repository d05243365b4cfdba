"""The offline ``sketch`` provider: exact, deterministic, varied, robust PNG drafts."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
import time

import logging
import unicodedata
from importlib import resources
from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps, ImageStat

from limner.providers.base import GenerationRequest, GenerationResult
from limner.providers.errors import InvalidRequest, Transient
from limner.providers.sketch import SketchProvider, render_sketch
from limner.providers.sketch_art import PALETTES, format_year, normalize_era, render_image, sanitize, style_kind
from limner.providers.sketch_art import text as text_mod

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ERAS = [
    "patriarchs",
    "exodus-and-judges",
    "first-temple",
    "exile-and-second-temple",
    "roman-and-talmudic",
    "medieval",
    "early-modern",
    "modern",
    "holocaust",
    "state-of-israel",
    "default",
]
STYLES = [None, "pencil-sketch", "illuminated-manuscript", "oil-painting", "documentary-photo"]


def req(width: int = 256, height: int = 256, seed: int = 7, **context: object) -> GenerationRequest:
    ctx = {"id": "e-001", "title": "The Covenant between the Pieces", "year": -1800, "era": "patriarchs"}
    ctx.update(context)
    ctx = {k: v for k, v in ctx.items() if v is not ...}
    return GenerationRequest(prompt="a draft", negative_prompt="", width=width, height=height, seed=seed, model="sketch-v1", context=ctx)


def decode(data: bytes) -> Image.Image:
    assert data[:8] == PNG_MAGIC
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    img.load()
    return img


def gray_std(data: bytes) -> float:
    return float(ImageStat.Stat(decode(data).convert("L")).stddev[0])


@pytest.fixture
def provider() -> SketchProvider:
    return SketchProvider()


# --- contract ----------------------------------------------------------------------------------

def test_class_contract() -> None:
    caps = SketchProvider.capabilities
    assert SketchProvider.name == "sketch"
    assert SketchProvider.default_model == "sketch-v1"
    assert SketchProvider.offline is True
    assert SketchProvider.price_usd == 0.0
    assert caps.supports_seed and not caps.supports_negative_prompt
    assert (caps.max_concurrency, caps.rate_limit_per_minute, caps.max_side, caps.size_multiple) == (8, None, 2048, 8)


def test_every_setting_it_reads_is_declared() -> None:
    """A key of ``[providers.sketch]`` it does not declare is refused as a typo: each key it reads must be
    declared (its test hooks ``latency_s`` and ``fail_ids``), or a correct one would be refused."""
    from limner.testing.provider_suite import settings_read, undeclared_settings

    read = asyncio.run(settings_read(SketchProvider(settings={"latency_s": 0}), req(64, 64, id="a")))
    assert {"latency_s", "fail_ids"} <= read
    assert undeclared_settings(SketchProvider, read) == set()


async def test_result_fields(provider: SketchProvider) -> None:
    r = await provider.generate(req(seed=1234))
    assert isinstance(r, GenerationResult)
    assert r.seed == 1234
    assert r.cost_usd == 0.0
    assert r.model == "sketch-v1"
    assert r.metadata == {"renderer": "sketch-v1"}
    assert r.data[:8] == PNG_MAGIC


async def test_model_override_is_reported() -> None:
    r = await SketchProvider(model="sketch-custom").generate(req())
    assert r.model == "sketch-custom"


@pytest.mark.parametrize("size", [(256, 256), (320, 192), (192, 448), (8, 8), (16, 64), (1024, 576)])
async def test_exact_size(provider: SketchProvider, size: tuple[int, int]) -> None:
    r = await provider.generate(req(*size))
    img = decode(r.data)
    assert img.size == size
    assert img.mode == "RGB"


@pytest.mark.parametrize("size", [(0, 256), (256, 0), (4096, 256), (256, 2056), (-8, 8)])
async def test_bad_sizes_are_invalid_requests(provider: SketchProvider, size: tuple[int, int]) -> None:
    with pytest.raises(InvalidRequest):
        await provider.generate(req(*size))


# --- determinism and variety -------------------------------------------------------------------

async def test_deterministic_bytes(provider: SketchProvider) -> None:
    a = await provider.generate(req(384, 256, seed=99, style="oil-painting"))
    b = await SketchProvider().generate(req(384, 256, seed=99, style="oil-painting"))
    assert a.data == b.data


def test_render_sketch_is_pure() -> None:
    args = (200, 120, 5, "Title", 70, None, "roman-and-talmudic", "photo")
    assert render_sketch(*args) == render_sketch(*args)


def _mean_abs_diff(a: bytes, b: bytes) -> float:
    x = np.asarray(decode(a).convert("L"), dtype=np.float32)
    y = np.asarray(decode(b).convert("L"), dtype=np.float32)
    return float(np.abs(x - y).mean())


async def test_different_seeds_differ_visibly(provider: SketchProvider) -> None:
    a = await provider.generate(req(seed=1))
    b = await provider.generate(req(seed=2))
    assert a.data != b.data
    assert _mean_abs_diff(a.data, b.data) > 4


async def test_different_titles_differ_visibly(provider: SketchProvider) -> None:
    a = await provider.generate(req(title="Abraham leaves Ur"))
    b = await provider.generate(req(title="The binding of Isaac"))
    assert a.data != b.data
    assert _mean_abs_diff(a.data, b.data) > 4


def test_many_seeds_are_all_distinct() -> None:
    blobs = {render_sketch(96, 96, s, "Same title", -586, None, "first-temple", None) for s in range(12)}
    assert len(blobs) == 12


def test_eras_have_their_own_palette() -> None:
    means = {}
    for era in ("patriarchs", "holocaust", "state-of-israel"):
        img = decode(render_sketch(128, 128, 3, "x", 1, None, era, None))
        means[era] = np.asarray(img, dtype=np.float32).reshape(-1, 3).mean(axis=0)
    # holocaust is muted: channels close together
    r, g, b = means["holocaust"]
    assert max(r, g, b) - min(r, g, b) < 12
    # patriarchs is warm (red over blue), the state of Israel cool (blue over red)
    assert means["patriarchs"][0] > means["patriarchs"][2] + 15
    assert means["state-of-israel"][2] > means["state-of-israel"][0]


# --- every era and style -----------------------------------------------------------------------

@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("style", STYLES)
async def test_every_era_and_style_renders(provider: SketchProvider, era: str, style: str | None) -> None:
    r = await provider.generate(req(256, 192, seed=hash((era, style)) & 0xFFFF, era=era, style=style))
    img = decode(r.data)
    assert img.size == (256, 192)
    assert gray_std(r.data) > 20


@pytest.mark.parametrize("era", ERAS)
def test_detail_is_well_above_validation_floor(era: str) -> None:
    # validation rejects near-uniform images (grayscale std-dev < 4); drafts must be far from that
    for seed in range(4):
        for style in (None, "manuscript", "oil", "photo"):
            assert gray_std(render_sketch(160, 160, seed, "An entry", 1500, None, era, style)) > 20


def test_style_kinds() -> None:
    assert style_kind(None) == "sketch"
    assert style_kind("watercolour") == "sketch"
    assert style_kind("Illuminated Manuscript") == "manuscript"
    assert style_kind("oil-painting") == "oil"
    assert style_kind("archival_photo") == "photo"


def test_era_names_normalise() -> None:
    assert normalize_era("Exile and Second Temple") == "exile-and-second-temple"
    assert normalize_era("state_of_israel") == "state-of-israel"
    assert normalize_era("Roman & Talmudic") == "roman-and-talmudic"
    assert normalize_era("bronze age") == "default"
    assert normalize_era(None) == "default"
    assert normalize_era(42) == "default"
    assert set(ERAS) <= set(PALETTES)


# --- text --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "title",
    [
        "בראשית",  # Hebrew only
        "The Zohar (ספר הזוהר)",
        "Emoji 🕎✡️🔥 title",
        'Quotes "double" and \'single\' and “curly” ‘ones’',
        "Café — naïve «guillemets» Straße",
        "\u200d\ufe0f\u202e\x00control",
        "",
        "   ",
        "W" * 400,
        " ".join(["word"] * 120),
        "a\nmulti\tline\rtitle",
        "\ud800 lone surrogate",
        "\u05b0\u05bc starts with marks",  # niqqud with no letter: the shaper's dotted circle, which the font has
        "المخطوطة بالعربية",  # Arabic: the bundled font lacks it
        "ט" * 300,
        "בְּרֵאשִׁית" * 40,  # one long pointed word: broken between letters, never between a letter and its marks
    ],
)
async def test_awkward_titles_never_crash(provider: SketchProvider, title: str) -> None:
    r = await provider.generate(req(320, 240, title=title))
    assert decode(r.data).size == (320, 240)


def test_sanitize_keeps_what_the_font_can_draw() -> None:
    # the bundled font draws Hebrew, Latin-1, Latin Extended-A, Greek, Cyrillic and General Punctuation as they are
    assert sanitize("בראשית") == "בראשית"
    assert sanitize("The Zohar (ספר הזוהר)") == "The Zohar (ספר הזוהר)"
    assert sanitize("בְּרֵאשִׁית בָּרָא") == unicodedata.normalize("NFC", "בְּרֵאשִׁית בָּרָא")
    assert sanitize("תשפ״ה – ט׳ באב") == "תשפ״ה – ט׳ באב"
    assert sanitize("Café — naïve") == "Café — naïve"
    assert sanitize("Straße, Łódź") == "Straße, Łódź"
    assert sanitize("Кишинёвский погром") == "Кишинёвский погром"
    assert sanitize('“Curly” quotes…') == '“Curly” quotes…'
    # what it lacks is transliterated where obvious and dropped otherwise
    assert sanitize("Emoji 🕎 title") == "Emoji title"
    assert sanitize("Ploiești") == "Ploiesti"  # s with comma below (Latin Extended-B)
    assert sanitize("Exile → return") == "Exile -> return"
    assert sanitize("The Zohar (الزوهر)") == "The Zohar"
    assert sanitize("\u200fבראשית\u202e") == "בראשית"  # bidi controls are dropped: the layout decides
    assert sanitize(None) == ""
    assert sanitize(1948) == "1948"


def test_the_bundled_font_has_every_hebrew_letter() -> None:
    letters = [chr(c) for c in range(0x05D0, 0x05EB)]  # alef to tav, final forms included
    points = [chr(c) for c in range(0x05B0, 0x05BD)]  # sheva to dagesh
    assert all(text_mod.can_render(ch) for ch in letters + points + ["\u05be", "\u05f3", "\u05f4", "\ufb2a"])
    assert not text_mod.can_render("\u0628")  # Arabic beh: not in the subset
    assert not text_mod.can_render("\U0001f54e")


def test_the_bundled_font_ships_with_its_licence_and_recipe() -> None:
    folder = resources.files("limner.providers.sketch_art").joinpath("fonts")
    font = folder.joinpath(text_mod.FONT_FILE).read_bytes()
    assert font[:4] == b"\x00\x01\x00\x00"  # TrueType
    assert len(font) < 150_000
    licence = folder.joinpath("LICENSE").read_text(encoding="utf-8")
    assert "Bitstream Vera Fonts Copyright" in licence and "Arev Fonts Copyright" in licence
    readme = folder.joinpath("README.md").read_text(encoding="utf-8")
    assert "pyftsubset" in readme and "U+0590-05FF" in readme and hashlib.sha256(font).hexdigest() in readme


def test_year_captions() -> None:
    assert format_year(-586) == "586 BCE"
    assert format_year(70) == "70 CE"
    assert format_year(-1800, "c. 1800 BCE") == "c. 1800 BCE"
    assert format_year(1948, "14 May 1948") == "14 May 1948"
    assert format_year(-586, "ט׳ באב") == "ט׳ באב"  # a Hebrew date is drawn as it is
    assert format_year(-586, "🕎🕎") == "586 BCE"  # an undrawable date falls back to the year
    assert format_year(None) == ""
    assert format_year("1492") == "1492 CE"
    assert format_year(1492.0) == "1492 CE"
    assert format_year("sometime") == ""
    assert format_year(True) == ""


@pytest.fixture
def drawn_text(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = ImageDraw.ImageDraw.text

    def spy(self: ImageDraw.ImageDraw, xy, text, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(str(text))
        return original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    return seen


async def test_negative_year_renders_bce(provider: SketchProvider, drawn_text: list[str]) -> None:
    await provider.generate(req(512, 512, year=-586, title="Destruction of the First Temple", era="first-temple"))
    assert "586 BCE" in drawn_text
    assert any("Destruction" in t for t in drawn_text)


async def test_positive_year_renders_ce(provider: SketchProvider, drawn_text: list[str]) -> None:
    await provider.generate(req(512, 512, year=70, title="Fall of Jerusalem", era="roman-and-talmudic"))
    assert "70 CE" in drawn_text


async def test_date_wins_over_year(provider: SketchProvider, drawn_text: list[str]) -> None:
    await provider.generate(req(512, 512, year=-1800, date="c. 1800 BCE"))
    assert "c. 1800 BCE" in drawn_text


async def test_long_titles_wrap_to_at_most_three_lines(provider: SketchProvider, drawn_text: list[str]) -> None:
    title = "The very long title of an entry that goes on and on about the many events of a long century"
    await provider.generate(req(512, 512, title=title, year=None))
    assert 2 <= len(drawn_text) <= 3
    assert " ".join(drawn_text).replace("...", "") in title


def laid_out(logical: str) -> str:
    """What Pillow is handed for one line: the logical text with raqm, else the text in visual order."""
    return logical if text_mod.has_raqm() else text_mod.visual_order(logical, text_mod.base_direction(logical))


async def test_hebrew_title_is_drawn_not_dropped(provider: SketchProvider, drawn_text: list[str]) -> None:
    await provider.generate(req(512, 512, title="ספר הזוהר", year=1290, era="medieval"))
    assert drawn_text == [laid_out("ספר הזוהר"), "1290 CE"]


async def test_hebrew_date_caption(provider: SketchProvider, drawn_text: list[str]) -> None:
    await provider.generate(req(512, 512, title="Tisha B'Av", date="ט׳ באב", era="roman-and-talmudic"))
    assert drawn_text == ["Tisha B'Av", laid_out("ט׳ באב")]


# --- right-to-left layout ----------------------------------------------------------------------

@pytest.fixture
def text_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[float, float], str, dict]]:
    """Every ImageDraw.text call: anchor point, text, keyword arguments (font, direction, ...)."""
    seen: list[tuple[tuple[float, float], str, dict]] = []
    original = ImageDraw.ImageDraw.text

    def spy(self: ImageDraw.ImageDraw, xy, text, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((tuple(xy), str(text), dict(kwargs)))
        return original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    return seen


@pytest.fixture(params=["raqm", "basic"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both layout engines: raqm (where this Pillow has it) and the basic one with Limner's reordering."""
    if request.param == "raqm" and not text_mod.has_raqm():
        pytest.skip("this Pillow has no raqm")
    if request.param == "basic":
        monkeypatch.setattr(text_mod, "has_raqm", lambda: False)
    return str(request.param)


def _blurred(img: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(img.crop(box).filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float64)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _glyphs(size: int, xy: tuple[float, float], visual: str, canvas: tuple[int, int]) -> Image.Image:
    """``visual`` (already in display order) drawn glyph after glyph, left to right, by the basic layout."""
    font = ImageFont.truetype(BytesIO(text_mod._font_bytes()), size, layout_engine=ImageFont.Layout.BASIC)
    ref = Image.new("L", canvas, 0)
    ImageDraw.Draw(ref).text(xy, visual, font=font, fill=255, anchor="mm")
    return ref


def _assert_shows_hebrew(text_calls: list, style: str | None) -> None:
    img = render_image(512, 384, 3, "בראשית", None, None, "patriarchs", style)
    assert len(text_calls) == 1  # the title, no caption
    xy, _, kw = text_calls[0]
    size = kw["font"].size
    # the letters bet-resh-alef-shin-yod-tav, right to left: drawn left to right that is tav ... bet
    right = _glyphs(size, xy, "תישארב", img.size)
    wrong = _glyphs(size, xy, "בראשית", img.size)  # the same letters left to right
    bb = right.getbbox()
    assert bb is not None
    box = (bb[0] - 3, bb[1] - 3, bb[2] + 3, bb[3] + 3)
    ink = _blurred(ImageOps.invert(img.convert("L")), box)
    assert _ncc(ink, _blurred(right, box)) > 0.93
    assert _ncc(ink, _blurred(wrong, box)) < 0.85


@pytest.mark.parametrize("style", [None, "manuscript", "oil", "photo"])
def test_hebrew_only_title_shows_hebrew_on_the_image(text_calls: list, style: str | None) -> None:
    _assert_shows_hebrew(text_calls, style)  # with the layout engine this Pillow has


@pytest.mark.parametrize("style", [None, "photo"])
def test_hebrew_only_title_shows_hebrew_with_the_basic_layout(text_calls: list, style: str | None,
                                                               no_raqm: None) -> None:
    _assert_shows_hebrew(text_calls, style)


@pytest.mark.parametrize(
    ("logical", "visual"),
    [
        ("בראשית", "תישארב"),
        ("חורבן בית המקדש השני 70", "70 ינשה שדקמה תיב ןברוח"),  # the year stays left to right, at the left end
        ("The Zohar (ספר הזוהר)", "The Zohar (רהוזה רפס)"),  # a Hebrew run inside a Latin line
        ("מלחמת העצמאות (1948-1949)", "(1948-1949) תואמצעה תמחלמ"),  # brackets mirrored, a hyphen joins the numbers
        ("מלחמת העצמאות (1948–1949)", "(1949–1948) תואמצעה תמחלמ"),  # an en dash does not (UAX #9, as FriBiDi)
        ("גלות בבל, 586 לפנה״ס", "ס״הנפל 586 ,לבב תולג"),
    ],
)
def test_right_to_left_lines_are_laid_out_in_display_order(logical: str, visual: str, layout: str) -> None:
    direction = text_mod.base_direction(logical)
    # Limner's own reordering (used without raqm) gives the display order written out by hand ...
    assert text_mod.visual_order(logical, direction) == visual
    # ... and so does the engine at hand (raqm, when Pillow has it) drawing the logical text
    font = text_mod.get_font(36)
    canvas = (1000, 80)
    drawn = Image.new("L", canvas, 0)
    text_mod.draw_text(ImageDraw.Draw(drawn), (500, 40), logical, font, (255,), direction)
    box = (0, 0, *canvas)
    score = _ncc(_blurred(drawn, box), _blurred(_glyphs(36, (500, 40), visual, canvas), box))
    assert score > 0.9
    if logical != visual:  # left to right as stored: what a layout without bidi draws
        assert _ncc(_blurred(drawn, box), _blurred(_glyphs(36, (500, 40), logical, canvas), box)) < 0.85
    if logical[::-1] != visual:  # every character reversed, numbers included
        assert _ncc(_blurred(drawn, box), _blurred(_glyphs(36, (500, 40), logical[::-1], canvas), box)) < score


@pytest.mark.parametrize("number", ["70", "1948", "132"])
def test_numbers_in_right_to_left_lines_read_left_to_right(number: str, layout: str) -> None:
    # "the year N": the number ends up at the left end, its digits in their usual order
    logical = f"שנת {number}"
    font = text_mod.get_font(36)
    canvas = (600, 80)
    drawn = Image.new("L", canvas, 0)
    text_mod.draw_text(ImageDraw.Draw(drawn), (300, 40), logical, font, (255,), "rtl")
    bb = drawn.getbbox()
    assert bb is not None

    def left_part(img: Image.Image, width: float) -> np.ndarray:
        b = img.getbbox()
        assert b is not None
        return _blurred(img, (b[0] - 2, 0, int(b[0] + width) + 2, canvas[1]))

    width = font.getlength(number) - 2
    here = left_part(drawn, width)
    right = left_part(_glyphs(36, (300, 40), number, canvas), width)
    wrong = left_part(_glyphs(36, (300, 40), number[::-1], canvas), width)
    assert _ncc(here, right) > 0.95
    assert _ncc(here, wrong) < 0.85


def test_paragraph_direction() -> None:
    assert text_mod.base_direction("חורבן בית המקדש השני 70") == "rtl"
    assert text_mod.base_direction("70 לספירה") == "rtl"  # digits are weak: the first letter decides
    assert text_mod.base_direction("The Zohar (ספר הזוהר)") == "ltr"
    assert text_mod.base_direction("1948") == "ltr"


async def test_long_hebrew_titles_wrap_right_to_left(provider: SketchProvider, text_calls: list, layout: str) -> None:
    words = ["מרד", "בר", "כוכבא", "נגד", "האימפריה", "הרומית", "בימי", "הקיסר", "אדריאנוס", "בשנים", "132", "עד", "136",
             "לספירה", "ודיכויו", "האכזרי"]
    title = " ".join(words)
    await provider.generate(req(512, 512, title=title, year=132, era="roman-and-talmudic"))
    lines, caption = text_calls[:-1], text_calls[-1]
    assert caption[1] == "132 CE"
    assert 2 <= len(lines) <= 3
    if layout == "raqm":  # each line is handed over in logical order and drawn right to left, even one
        assert all(kw["direction"] == "rtl" for _, _, kw in lines)  # that starts with a number
        logical = [ln for _, ln, _ in lines]
    else:  # each line is handed over in display order (for Hebrew words and numbers the reordering is its own inverse)
        assert all("direction" not in kw for _, _, kw in lines)
        logical = [text_mod.visual_order(ln, "rtl") for _, ln, _ in lines]
    # lines keep reading order: the first words on the top line
    assert " ".join(logical).split() == words[: len(" ".join(logical).split())]
    assert logical[0].startswith("מרד בר כוכבא")
    ys = [xy[1] for xy, _, _ in lines]
    assert ys == sorted(ys)
    font = lines[0][2]["font"]
    box_w = 512 * 0.72 - 2 * 512 * 0.024
    assert all(font.getlength(ln, **({"direction": "rtl"} if text_mod.has_raqm() else {})) <= box_w for _, ln, _ in lines)


def test_wrap_keeps_niqqud_with_its_letter(layout: str) -> None:
    font = text_mod.get_font(20)
    word = "בְּרֵאשִׁית" * 6
    lines, _ = text_mod.wrap(font, word, 90, 10, "rtl")
    assert len(lines) > 1
    assert "".join(lines) == word
    assert not any(unicodedata.combining(ln[0]) for ln in lines)


def test_hebrew_titles_are_deterministic() -> None:
    args = (320, 240, 11, "חורבן בית המקדש השני 70", 70, "ט׳ באב", "roman-and-talmudic", "manuscript")
    assert render_sketch(*args) == render_sketch(*args)


# --- without raqm ------------------------------------------------------------------------------

@pytest.fixture
def no_raqm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow as built without libraqm/FriBiDi: the basic layout."""
    monkeypatch.setattr(text_mod, "has_raqm", lambda: False)
    monkeypatch.setattr(text_mod, "_warned", False)


def test_without_raqm_rtl_titles_are_reordered_and_it_says_so(no_raqm: None, text_calls: list,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="limner.providers.sketch")
    img = render_image(512, 384, 3, "חורבן בית המקדש השני 70", None, None, "roman-and-talmudic", None)
    render_image(512, 384, 4, "בראשית", None, None, "patriarchs", None)
    _, drawn, kw = text_calls[0]
    assert drawn == "70 ינשה שדקמה תיב ןברוח"  # still drawn, in display order
    assert "direction" not in kw  # the basic layout takes none
    assert kw["font"].layout_engine == ImageFont.Layout.BASIC
    assert img.size == (512, 384)
    warnings = [r for r in caplog.records if "raqm" in r.getMessage()]
    assert len(warnings) == 1  # said once, not once per image
    assert "simplified bidi" in warnings[0].getMessage()


def test_without_raqm_latin_titles_warn_nothing(no_raqm: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="limner.providers.sketch")
    render_sketch(256, 256, 1, "The Covenant between the Pieces", -1800, None, "patriarchs", None)
    assert not caplog.records


async def test_doctor_reports_the_caption_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    detail = await SketchProvider().check()
    assert detail.startswith("offline")
    if text_mod.has_raqm():
        assert "raqm" in detail and "right-to-left" in detail and "no raqm" not in detail
    monkeypatch.setattr(text_mod, "has_raqm", lambda: False)
    detail = await SketchProvider().check()
    assert "no raqm" in detail and "libfribidi" in detail


# --- missing context ---------------------------------------------------------------------------

@pytest.mark.parametrize("year", [None, ..., "not a year", 0, -1, 2023])
async def test_missing_or_odd_year(provider: SketchProvider, year: object) -> None:
    r = await provider.generate(req(year=year, date=...))
    assert decode(r.data).size == (256, 256)


async def test_empty_context(provider: SketchProvider) -> None:
    request = GenerationRequest(prompt="p", negative_prompt="", width=200, height=128, seed=0, model="sketch-v1")
    r = await provider.generate(request)
    assert decode(r.data).size == (200, 128)
    assert gray_std(r.data) > 20


async def test_odd_context_values(provider: SketchProvider) -> None:
    r = await provider.generate(req(title=12345, era=["not", "a", "str"], style=3.5, date=None, id=None))
    assert decode(r.data).size == (256, 256)


async def test_huge_and_negative_seeds(provider: SketchProvider) -> None:
    a = await provider.generate(req(seed=-1))
    b = await provider.generate(req(seed=2**80))
    assert a.data != b.data


# --- hooks and concurrency ---------------------------------------------------------------------

async def test_latency_hook() -> None:
    p = SketchProvider(settings={"latency_s": 0.2})
    t0 = time.perf_counter()
    await p.generate(req(64, 64))
    assert time.perf_counter() - t0 >= 0.19


async def test_fail_ids_hook() -> None:
    p = SketchProvider(settings={"fail_ids": ["e-002", "e-003"]})
    with pytest.raises(Transient, match="sketch: injected failure for e-002") as info:
        await p.generate(req(64, 64, id="e-002"))
    assert info.value.retryable
    ok = await p.generate(req(64, 64, id="e-001"))
    assert ok.data[:8] == PNG_MAGIC


async def test_render_runs_off_the_event_loop() -> None:
    p = SketchProvider()
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    await p.generate(req(768, 768, style="oil"))
    stop.set()
    await task
    assert ticks >= 3  # the loop kept running while the picture was drawn


async def test_concurrent_generation_is_deterministic() -> None:
    p = SketchProvider()
    distinct = [req(192, 192, seed=i, title=f"T{i}", style=STYLES[i], era=ERAS[i]) for i in range(4)]
    requests = distinct * 3
    results = await asyncio.gather(*(p.generate(r) for r in requests))
    for i, r in enumerate(results):
        assert r.data == results[i % 4].data
    assert len({r.data for r in results}) == 4


def test_speed_1024() -> None:
    render_sketch(1024, 1024, 0, "warm up", 1, None, "medieval", None)
    cpu = []
    for i, era in enumerate(ERAS):
        t = time.thread_time()
        render_sketch(1024, 1024, i, "A title of ordinary length", -586, None, era, STYLES[i % len(STYLES)])
        cpu.append(time.thread_time() - t)
    assert sorted(cpu)[len(cpu) // 2] < 0.3  # generous: shared CI machines are slow


@pytest.mark.parametrize("title", ["Title", "חורבן בית ראשון 586"])
def test_same_bytes_in_another_process(title: str) -> None:
    code = (
        "import hashlib, sys\n"
        "from limner.providers.sketch import render_sketch\n"
        f"sys.stdout.write(hashlib.sha256(render_sketch(160, 120, 42, {title!r}, -586, None, 'first-temple', 'oil')).hexdigest())\n"
    )
    here = hashlib.sha256(render_sketch(160, 120, 42, title, -586, None, "first-temple", "oil")).hexdigest()
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert out.stdout == here

