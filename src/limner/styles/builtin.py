"""Built-in styles. Projects override them by defining a style of the same name."""

from __future__ import annotations

from limner.styles.models import Style

_SUBJECT = (
    "{{ title }}{% if year_label %}, {{ year_label }}{% endif %}."
    "{% if description %} {{ description }}{% endif %}"
)

BUILTIN_STYLES: tuple[Style, ...] = (
    Style(
        name="illuminated-manuscript",
        version="1",
        description="A page of a medieval illuminated manuscript: gold leaf, decorated border, flat perspective.",
        positive=(
            "Illuminated manuscript illustration of " + _SUBJECT + " Medieval Hebrew manuscript page, gold leaf, "
            "lapis blue and vermilion pigments, ornate decorated border, flat perspective, fine ink linework, "
            "parchment texture, museum quality"
        ),
        negative="photograph, 3d render, modern clothing, text, watermark, signature, blurry, deformed hands",
        aspect="3:2",
    ),
    Style(
        name="oil-painting",
        version="1",
        description="A classical oil painting: chiaroscuro, rich pigments, visible brushwork.",
        positive=(
            "Classical oil painting of " + _SUBJECT + " Historical scene, dramatic chiaroscuro lighting, rich earthy "
            "pigments, visible brushwork, canvas texture, composed like a museum history painting"
        ),
        negative="photograph, cartoon, anime, text, watermark, signature, oversaturated, deformed hands",
        aspect="3:2",
    ),
    Style(
        name="documentary-photo",
        version="1",
        description="A documentary photograph of the period: natural light, film grain, archival look.",
        positive=(
            "Documentary photograph of " + _SUBJECT + " Period-accurate archival photograph, natural light, "
            "35mm film grain, candid composition, historically accurate clothing and setting"
        ),
        negative="painting, illustration, cartoon, text, watermark, anachronism, oversaturated, deformed hands",
        aspect="3:2",
    ),
)
