"""Provenance metadata (XMP) for AI-generated images."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Provenance", "xmp_packet", "embed_xmp", "DIGITAL_SOURCE_TYPE", "LIMNER_XMP_NS", "MAX_XMP_BYTES"]

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
LIMNER_XMP_NS = "https://limner.dev/ns/1.0/"
MAX_XMP_BYTES = 60_000
"""Packets are kept below this so they fit a single JPEG APP1 segment (65,502 bytes)."""

_SHORT_FIELD_CHARS = 1_000
_ELLIPSIS = "\u2026"
# Characters that XML 1.0 forbids, including lone surrogates and U+FFFE/U+FFFF.
_XML_INVALID = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def embed_xmp(data: bytes, packet: bytes) -> bytes:
    """Embed an XMP packet in image bytes (see :mod:`.xmp_embed`; imported on first use: it needs Pillow,
    and the runner's main process builds provenance records long before it embeds one)."""
    from .xmp_embed import embed_xmp as embed

    return embed(data, packet)


@dataclass(frozen=True)
class Provenance:
    entry_id: str
    title: str
    prompt: str
    model: str
    provider: str
    seed: int
    alt: str = ""
    created: str = ""


def _text(value: object) -> str:
    """XML-escape text for element content and attribute values alike."""
    s = _XML_INVALID.sub("", str(value))
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
        .replace("\r", "&#13;")
    )


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + _ELLIPSIS


def _alt(tag: str, value: str) -> str:
    return (
        f"   <{tag}>\n    <rdf:Alt>\n"
        f'     <rdf:li xml:lang="x-default">{_text(value)}</rdf:li>\n'
        f"    </rdf:Alt>\n   </{tag}>\n"
    )


def _render(p: Provenance, prompt: str) -> bytes:
    created = f"   <xmp:CreateDate>{_text(p.created)}</xmp:CreateDate>\n" if p.created else ""
    body = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        f'    xmlns:limner="{LIMNER_XMP_NS}">\n'
        f"   <Iptc4xmpExt:DigitalSourceType>{DIGITAL_SOURCE_TYPE}</Iptc4xmpExt:DigitalSourceType>\n"
        + _alt("dc:title", _clip(p.title, _SHORT_FIELD_CHARS))
        + (_alt("dc:description", _clip(p.alt, _SHORT_FIELD_CHARS)) if p.alt else "")
        + created
        + "   <xmp:CreatorTool>Limner</xmp:CreatorTool>\n"
        f"   <limner:entryId>{_text(_clip(p.entry_id, _SHORT_FIELD_CHARS))}</limner:entryId>\n"
        f"   <limner:prompt>{_text(prompt)}</limner:prompt>\n"
        f"   <limner:model>{_text(_clip(p.model, _SHORT_FIELD_CHARS))}</limner:model>\n"
        f"   <limner:provider>{_text(_clip(p.provider, _SHORT_FIELD_CHARS))}</limner:provider>\n"
        f"   <limner:seed>{int(p.seed)}</limner:seed>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    )
    return body.encode("utf-8")


def xmp_packet(p: Provenance) -> bytes:
    """Serialise provenance as a UTF-8 XMP packet (prompt shortened if it would exceed MAX_XMP_BYTES)."""
    prompt = p.prompt
    packet = _render(p, prompt)
    while len(packet) > MAX_XMP_BYTES:
        prompt = _clip(prompt, max(1, len(prompt) * 3 // 4))
        packet = _render(p, prompt)
    return packet
