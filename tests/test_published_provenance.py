"""What published files say about their making: compact XMP (no prompt) in variants and placeholders by
default, the full record in masters, and the right IPTC digital source type per provider."""

from __future__ import annotations

import re

import pytest
from test_runner import rows, run

from limner.db.models import Render, Variant

PROMPT_MARK = "zebra-crossing-of-the-red-sea"


def xmp_of(data: bytes) -> bytes:
    m = re.search(rb"<x:xmpmeta.*?</x:xmpmeta>", data, re.S)
    return m.group(0) if m else b""


def objects(p):
    project = p.project()
    try:
        variants = [(v.width, v.format, project.storage.get(v.key)) for v in rows(p, Variant)]
        renders = rows(p, Render)
        placeholders = [project.storage.get(r.placeholder_key) for r in renders]
        masters = [project.storage.get(r.master_key) for r in renders]
    finally:
        project.close()
    return variants, placeholders, masters


@pytest.fixture
def with_marked_prompts(make_project_dir):
    def make(extra_generate: str = "", provider: str = "fake"):
        p = make_project_dir(2, provider=provider, name=f"proj-{provider}-{bool(extra_generate)}")
        entries = p.entries()
        for e in entries:
            e["description"] = f"{PROMPT_MARK} " + "a long and detailed description " * 20
        p.write_catalog(entries)
        if extra_generate:
            p.config.write_text(p.config.read_text().replace("[generate]\n", f"[generate]\n{extra_generate}\n"))
        return p
    return make


def test_published_files_carry_no_prompt_and_small_metadata_by_default(with_marked_prompts):
    p = with_marked_prompts()
    _, summary = run(p)
    assert summary.generated == 2
    variants, placeholders, masters = objects(p)
    assert variants and placeholders
    for width, fmt, data in variants:
        assert PROMPT_MARK.encode() not in data, (width, fmt)
        xmp = xmp_of(data)
        assert b"trainedAlgorithmicMedia" in xmp and b"<limner:entryId>" in xmp and b"<limner:fingerprint>" in xmp
        if fmt == "webp" and width <= 240:
            assert len(xmp) < 2048, len(xmp)
    assert all(PROMPT_MARK.encode() not in ph for ph in placeholders)
    assert all(PROMPT_MARK.encode() in m for m in masters)  # the master keeps the full record


def test_full_variant_provenance_is_a_setting(with_marked_prompts):
    p = with_marked_prompts('variant_provenance = "full"')
    run(p)
    variants, placeholders, _ = objects(p)
    assert all(PROMPT_MARK.encode() in data for _, _, data in variants)


@pytest.mark.slow
def test_sketch_images_say_algorithmic_media(make_project_dir):
    p = make_project_dir(1, provider="sketch")
    proc = p.run("generate", env=p.env_without_the_test_plugin())
    assert proc.returncode == 0, proc.stderr
    variants, placeholders, masters = objects(p)
    for data in [d for _, _, d in variants] + placeholders + masters:
        xmp = xmp_of(data)
        assert b"digitalsourcetype/algorithmicMedia" in xmp and b"trainedAlgorithmicMedia" not in xmp
