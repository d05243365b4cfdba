"""Why image bytes are refused. No Pillow here: the runner's main process catches these without
importing the imaging stack (that runs in the pool's workers)."""

from __future__ import annotations

REJECT_CODES = frozenset({"too_large_bytes", "too_many_pixels", "corrupt", "unsupported_format", "blank"})
_RETRYABLE_CODES = frozenset({"corrupt", "blank"})
#: what a damaged or wrong download also gives (a truncated body, an error page served with 200): the image
#: the provider made may be fine, and downloading it again costs nothing
_DOWNLOAD_CODES = frozenset({"corrupt", "unsupported_format"})


class ImageRejected(Exception):
    """Raised when image bytes are refused; ``code`` is machine-readable."""

    def __init__(self, code: str, reason: str) -> None:
        if code not in REJECT_CODES:
            raise ValueError(f"unknown rejection code {code!r}")
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    @property
    def retryable(self) -> bool:
        """True when generating the image again may succeed."""
        return self.code in _RETRYABLE_CODES

    @property
    def download_may_be_at_fault(self) -> bool:
        """True when the bytes may have been damaged on their way (worth downloading again before paying)."""
        return self.code in _DOWNLOAD_CODES

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def __reduce__(self):  # keep it picklable across process pools
        return (type(self), (self.code, self.reason))
