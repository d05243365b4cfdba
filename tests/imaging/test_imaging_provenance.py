from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from imaging_samples import detailed_image, encode, pixels
from PIL import Image

from limner.imaging import Provenance, embed_xmp, xmp_packet
from limner.imaging.provenance import DIGITAL_SOURCE_TYPE, MAX_XMP_BYTES

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "limner": "https://limner.dev/ns/1.0/",
}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

TRICKY = 'She said "שלום" & left <quickly> — it\'s 🎨🏳️‍🌈 ]]> done'
PROV = Provenance(
    entry_id="entry-42",
    title='Title with <b>tags</b> & "quotes"',
    prompt=TRICKY,
    model="flux-pro",
    provider="replicate",
    seed=987654321,
    alt="אלט טקסט & emoji 🖼️",
    created="2025-03-04T05:06:07Z",
)


def parse(packet: bytes) -> ET.Element:
    text = packet.decode("utf-8")
    start, end = text.index("<x:xmpmeta"), text.index("</x:xmpmeta>") + len("</x:xmpmeta>")
    return ET.fromstring(text[start:end]).find("rdf:RDF/rdf:Description", NS)


def read_xmp(data: bytes) -> bytes:
    """The packet as Pillow reads it (getxmp() would parse this, given defusedxml)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        xmp = im.info["xmp"]
    return xmp.encode("utf-8") if isinstance(xmp, str) else xmp


def assert_provenance(packet: bytes, p: Provenance = PROV) -> None:
    desc = parse(packet)
    assert desc.findtext("Iptc4xmpExt:DigitalSourceType", namespaces=NS) == DIGITAL_SOURCE_TYPE
    title = desc.find("dc:title/rdf:Alt/rdf:li", NS)
    assert title.text == p.title and title.get(XML_LANG) == "x-default"
    description = desc.find("dc:description/rdf:Alt/rdf:li", NS)
    if p.alt:
        assert description.text == p.alt and description.get(XML_LANG) == "x-default"
    else:
        assert description is None
    assert desc.findtext("limner:prompt", namespaces=NS) == p.prompt
    assert desc.findtext("limner:model", namespaces=NS) == p.model
    assert desc.findtext("limner:provider", namespaces=NS) == p.provider
    assert desc.findtext("limner:seed", namespaces=NS) == str(p.seed)
    assert desc.findtext("limner:entryId", namespaces=NS) == p.entry_id


def test_packet_round_trips_tricky_text():
    packet = xmp_packet(PROV)
    assert packet.startswith(b"<?xpacket begin=")
    assert packet.rstrip().endswith(b"<?xpacket end=\"r\"?>")
    assert_provenance(packet)
    assert parse(packet).findtext("xmp:CreateDate", namespaces=NS) == PROV.created


def test_packet_drops_characters_xml_forbids():
    p = Provenance("e", "t", "bell\x07 null\x00 tab\tnew\nline cr\r end", "m", "p", 1)
    desc = parse(xmp_packet(p))
    assert desc.findtext("limner:prompt", namespaces=NS) == "bell null tab\tnew\nline cr\r end"


def test_packet_without_optional_fields():
    p = Provenance("e", "t", "prompt", "m", "p", 0)
    desc = parse(xmp_packet(p))
    assert desc.findtext("xmp:CreateDate", namespaces=NS) is None
    assert desc.find("dc:description", NS) is None  # no alt text: no empty description


def test_huge_prompt_is_shortened_to_fit_one_jpeg_segment():
    p = Provenance("e", "t", '"&<>' * 40_000, "m", "p", 1)
    packet = xmp_packet(p)
    assert len(packet) <= MAX_XMP_BYTES
    prompt = parse(packet).findtext("limner:prompt", namespaces=NS)
    assert prompt.endswith("\u2026") and p.prompt.startswith(prompt[:-1])


def _masters() -> dict[str, bytes]:
    rgb = detailed_image(96, 64, seed=5)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    jfif = encode(rgb, "JPEG", quality=85)
    return {
        "jpeg": jfif,
        "jpeg-exif": encode(rgb, "JPEG", quality=85, exif=Image.Exif().tobytes()),
        "jpeg-progressive": encode(rgb, "JPEG", quality=85, progressive=True),
        "png": encode(rgb, "PNG"),
        "png-rgba": encode(rgba, "PNG"),
        "webp-lossy": encode(rgb, "WEBP", quality=80),
        "webp-lossless-alpha": encode(rgba, "WEBP", lossless=True),
        "webp-lossy-alpha": encode(rgba, "WEBP", quality=80),
        "webp-extended": encode(rgb, "WEBP", quality=80, exif=Image.Exif().tobytes()),
    }


MASTERS = _masters()


@pytest.mark.parametrize("name", sorted(MASTERS))
def test_embed_keeps_pixels_and_adds_packet(name):
    data = MASTERS[name]
    packet = xmp_packet(PROV)
    out = embed_xmp(data, packet)
    assert out[:4] == data[:4]  # same container
    assert np.array_equal(pixels(out), pixels(data))
    assert packet in out
    assert_provenance(read_xmp(out))  # what Pillow's reader (and getxmp()) sees


@pytest.mark.parametrize("name", sorted(MASTERS))
def test_embedding_twice_replaces_the_packet(name):
    first = embed_xmp(MASTERS[name], xmp_packet(PROV))
    other = Provenance("other", "Other", "other prompt", "m2", "p2", 7)
    second = embed_xmp(first, xmp_packet(other))
    assert second.count(b"<x:xmpmeta") == 1
    assert_provenance(read_xmp(second), other)
    assert np.array_equal(pixels(second), pixels(MASTERS[name]))


def test_jpeg_segment_order_keeps_jfif_and_exif_first():
    out = embed_xmp(MASTERS["jpeg-exif"], xmp_packet(PROV))
    assert out[:2] == b"\xff\xd8"
    markers = []
    pos = 2
    while out[pos + 1] != 0xDA:
        length = int.from_bytes(out[pos + 2 : pos + 4], "big")
        markers.append((out[pos + 1], out[pos + 4 : pos + 8]))
        pos += 2 + length
    app = [m for m in markers if 0xE0 <= m[0] <= 0xEF]
    assert app[0] == (0xE0, b"JFIF") and app[1] == (0xE1, b"Exif") and app[2] == (0xE1, b"http")


def test_webp_riff_size_and_flags_are_consistent():
    out = embed_xmp(MASTERS["webp-lossless-alpha"], xmp_packet(PROV))
    assert int.from_bytes(out[4:8], "little") == len(out) - 8
    assert out[12:16] == b"VP8X"
    flags = out[20]
    assert flags & 0x04 and flags & 0x10  # XMP + alpha
    assert int.from_bytes(out[24:27], "little") + 1 == 96
    assert int.from_bytes(out[27:30], "little") + 1 == 64


def test_avif_falls_back_to_lossless_png():
    data = encode(detailed_image(64, 48), "AVIF")
    out = embed_xmp(data, xmp_packet(PROV))
    assert out.startswith(b"\x89PNG")
    assert np.array_equal(pixels(out), pixels(data))
    assert_provenance(read_xmp(out))
