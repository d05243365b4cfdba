"""Insert an XMP packet into encoded image bytes without re-encoding pixels.

JPEG gets an APP1 segment, PNG an ``iTXt`` chunk and WebP an ``XMP `` chunk (simple
VP8/VP8L files are promoted to extended VP8X).  Any XMP packet already present is
replaced.  Other formats (AVIF) are re-encoded losslessly to PNG carrying the XMP.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import PngImagePlugin

from .decode import safe_open, sniff_format

XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_PNG_KEYWORD = b"XML:com.adobe.xmp"
_JPEG_MAX_SEGMENT = 0xFFFF - 2


def embed_xmp(data: bytes, xmp: bytes) -> bytes:
    """Return ``data`` with ``xmp`` embedded; pixels decode identically."""
    fmt = sniff_format(data)
    if fmt == "jpeg":
        return _embed_jpeg(data, xmp)
    if fmt == "png":
        return _embed_png(data, xmp)
    if fmt == "webp":
        return _embed_webp(data, xmp)
    return _reencode_png(data, xmp)


# --- JPEG ---------------------------------------------------------------------------


def _jpeg_header_segments(data: bytes) -> tuple[list[bytes], int]:
    """Split the marker segments between SOI and SOS; return them and where SOS starts."""
    segments: list[bytes] = []
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"malformed JPEG: expected a marker at offset {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: everything after is entropy-coded data
            return segments, pos
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            segments.append(data[pos : pos + 2])
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segments.append(data[pos : pos + 2 + length])
        pos += 2 + length
    raise ValueError("malformed JPEG: no start-of-scan marker")


def _embed_jpeg(data: bytes, xmp: bytes) -> bytes:
    payload = XMP_JPEG_HEADER + xmp
    if len(payload) > _JPEG_MAX_SEGMENT:
        raise ValueError(f"XMP packet of {len(xmp)} bytes does not fit one JPEG APP1 segment")
    segments, sos = _jpeg_header_segments(data)
    segments = [s for s in segments if not (s[1] == 0xE1 and s[4:].startswith(XMP_JPEG_HEADER))]
    # Keep JFIF (APP0) and Exif (APP1) first, as their specs require.
    lead = 0
    while lead < len(segments) and (
        segments[lead][1] == 0xE0 or (segments[lead][1] == 0xE1 and segments[lead][4:10] == b"Exif\x00\x00")
    ):
        lead += 1
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    head = b"".join(segments[:lead]) + app1 + b"".join(segments[lead:])
    return data[:2] + head + data[sos:]


# --- PNG ----------------------------------------------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _embed_png(data: bytes, xmp: bytes) -> bytes:
    itxt = _png_chunk(b"iTXt", XMP_PNG_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp)
    out = [data[:8]]
    pos, inserted = 8, False
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        chunk = data[pos:end]
        is_old_xmp = kind == b"iTXt" and data[pos + 8 : pos + 8 + len(XMP_PNG_KEYWORD) + 1] == XMP_PNG_KEYWORD + b"\x00"
        if kind in (b"IDAT", b"IEND") and not inserted:
            out.append(itxt)  # before the image data so streaming readers see it early
            inserted = True
        if not is_old_xmp:
            out.append(chunk)
        pos = end
        if kind == b"IEND":
            break
    if not inserted:
        raise ValueError("malformed PNG: no IDAT/IEND chunk")
    return b"".join(out)


# --- WebP ---------------------------------------------------------------------------

_VP8X_ALPHA = 0x10
_VP8X_XMP = 0x04


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks = []
    pos = 12
    end = min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    while pos + 8 <= end:
        kind = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        chunks.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


def _webp_canvas(kind: bytes, body: bytes) -> tuple[int, int, bool]:
    if kind == b"VP8 ":
        if body[3:6] != b"\x9d\x01\x2a":
            raise ValueError("malformed WebP: bad VP8 start code")
        w, h = struct.unpack("<HH", body[6:10])
        return w & 0x3FFF, h & 0x3FFF, False
    if kind == b"VP8L":
        if body[0] != 0x2F:
            raise ValueError("malformed WebP: bad VP8L signature")
        (bits,) = struct.unpack("<I", body[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    raise ValueError(f"malformed WebP: unexpected first chunk {kind!r}")


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) & 1 else b"")


def _embed_webp(data: bytes, xmp: bytes) -> bytes:
    chunks = [(k, b) for k, b in _riff_chunks(data) if k != b"XMP "]
    if not chunks:
        raise ValueError("malformed WebP: no chunks")
    kind, body = chunks[0]
    if kind == b"VP8X":
        header = bytes([body[0] | _VP8X_XMP]) + body[1:]
        chunks[0] = (b"VP8X", header)
    else:
        width, height, alpha = _webp_canvas(kind, body)
        flags = _VP8X_XMP | (_VP8X_ALPHA if alpha else 0)
        header = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        chunks.insert(0, (b"VP8X", header))
    chunks.append((b"XMP ", xmp))
    payload = b"WEBP" + b"".join(_riff_chunk(k, b) for k, b in chunks)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


# --- anything else ------------------------------------------------------------------


def _reencode_png(data: bytes, xmp: bytes) -> bytes:
    """Lossless fallback: decode and write PNG (same pixels, ICC profile kept)."""
    im = safe_open(data)
    meta = PngImagePlugin.PngInfo()
    meta.add_itxt(XMP_PNG_KEYWORD.decode(), xmp.decode("utf-8"))
    out = io.BytesIO()
    kwargs = {"icc_profile": im.info["icc_profile"]} if im.info.get("icc_profile") else {}
    im.save(out, "PNG", pnginfo=meta, **kwargs)
    return out.getvalue()
