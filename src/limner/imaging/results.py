"""What validation and derivation return: plain values, with no Pillow or NumPy behind them.

They cross from the imaging pool's workers to the runner's main process (pickled), and unpickling a
value imports the module that defines its class: defined here, they cost the main process nothing,
where they used to make it import NumPy and Pillow (about 60 ms of its GIL) at the very moment the
first image came back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageInfo:
    format: str
    mime: str
    width: int
    height: int
    bytes: int


@dataclass(frozen=True)
class Validated:
    info: ImageInfo
    phash: str
    mean_std: float
    """Standard deviation of grayscale luminance over a <=128px copy."""


@dataclass(frozen=True)
class Placeholder:
    data: bytes
    format: str
    width: int
    height: int
    quality: int


@dataclass(frozen=True)
class Variant:
    width: int
    height: int
    format: str
    mime: str
    name: str
    sha256: str
    data: bytes


@dataclass(frozen=True)
class Derived:
    width: int
    height: int
    variants: tuple[Variant, ...]
    placeholder: Placeholder
    blurhash: str
    thumbhash: str
    dominant_color: str
    settings_version: str
