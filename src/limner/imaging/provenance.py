"""Provenance metadata (XMP) for generated images.

Masters carry the full record (prompt, model, provider, seed). Variants and placeholders, which are
published, carry a compact one by default (:meth:`Provenance.public`): the IPTC digital source type,
Limner as the creator tool, the title, the entry id and the fingerprint that finds the full record in
the database; ``generate.variant_provenance = "full"`` puts the full record in them too.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

__all__ = ["Provenance", "xmp_packet", "embed_xmp", "DIGITAL_SOURCE_TYPE", "TRAINED_ALGORITHMIC_MEDIA",
           "ALGORITHMIC_MEDIA", "LIMNER_XMP_NS", "MAX_XMP_BYTES"]

#: IPTC digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/): made by a trained model,
#: or by an algorithm without training data (the offline sketch provider draws with code)
TRAINED_ALGORITHMIC_MEDIA = "trainedAlgorithmicMedia"
ALGORITHMIC_MEDIA = "algorithmicMedia"
_SOURCE_TYPE_BASE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
DIGITAL_SOURCE_TYPE = _SOURCE_TYPE_BASE + TRAINED_ALGORITHMIC_MEDIA
#: titles and alt texts in a compact (published) record are clipped to this many characters
_PUBLIC_FIELD_CHARS = 200
LIMNER_XMP_NS = "https://limner.dev/ns/1.0/"
MAX_XMP_BYTES = 60_000
"""Packets are kept below this so they fit a single JPEG APP1 segment (65,502 bytes)."""

_SHORT_FIELD_CHARS = 1_000
_ELLIPSIS = "\u2026"


@functools.cache
def _xml_invalid() -> re.Pattern[str]:
    """Characters that XML 1.0 forbids, including lone surrogates and U+FFFE/U+FFFF. Compiled at first use
    (6 ms): the runner's main process imports this module before its first call, and writes its first XMP
    packet only once an answer is in, on a storage thread."""
    return re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


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
    seed: int | None
    alt: str = ""
    created: str = ""
    #: an IPTC digital source type term (``trainedAlgorithmicMedia``, ``algorithmicMedia``, ...)
    source_type: str = TRAINED_ALGORITHMIC_MEDIA
    #: the render's fingerprint: finds the full record (prompt, model, seed, cost) in the database
    fingerprint: str = ""

    def public(self) -> Provenance:
        """The compact record for published files: no prompt, model, provider or seed."""
        return replace(self, prompt="", model="", provider="", seed=None, title=_clip(self.title, _PUBLIC_FIELD_CHARS),
                       alt=_clip(self.alt, _PUBLIC_FIELD_CHARS))


def _text(value: object) -> str:
    """XML-escape text for element content and attribute values alike."""
    s = _xml_invalid().sub("", str(value))
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
        f"   <Iptc4xmpExt:DigitalSourceType>{_text(_SOURCE_TYPE_BASE + p.source_type)}</Iptc4xmpExt:DigitalSourceType>\n"
        + _alt("dc:title", _clip(p.title, _SHORT_FIELD_CHARS))
        + (_alt("dc:description", _clip(p.alt, _SHORT_FIELD_CHARS)) if p.alt else "")
        + created
        + "   <xmp:CreatorTool>Limner</xmp:CreatorTool>\n"
        f"   <limner:entryId>{_text(_clip(p.entry_id, _SHORT_FIELD_CHARS))}</limner:entryId>\n"
        + (f"   <limner:fingerprint>{_text(_clip(p.fingerprint, 64))}</limner:fingerprint>\n" if p.fingerprint else "")
        + (f"   <limner:prompt>{_text(prompt)}</limner:prompt>\n" if prompt else "")
        + (f"   <limner:model>{_text(_clip(p.model, _SHORT_FIELD_CHARS))}</limner:model>\n" if p.model else "")
        + (f"   <limner:provider>{_text(_clip(p.provider, _SHORT_FIELD_CHARS))}</limner:provider>\n" if p.provider else "")
        + (f"   <limner:seed>{int(p.seed)}</limner:seed>\n" if p.seed is not None else "")
        + "  </rdf:Description>\n"
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
