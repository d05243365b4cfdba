"""The process's verifying TLS context, shared by every provider client.

Loading the CA bundle costs about 20 ms; httpx makes a new context for every client unless it is given
one. This module builds it once, with the same rules as httpx's default (``SSL_CERT_FILE`` or
``SSL_CERT_DIR`` when set, else certifi's bundle), and is light to import: ``limner generate`` builds
the context on a background thread while it plans, where OpenSSL reads the bundle without holding the
GIL (see ``cli/commands/generate.py``).
"""

from __future__ import annotations

import os
import ssl
import threading

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The shared context (built on first use; thread-safe). A CA bundle that cannot be read is an
    ``InvalidRequest`` naming it (and the variable that points at it)."""
    global _context
    with _lock:
        if _context is None:
            if os.environ.get("SSL_CERT_FILE"):
                where, kwargs = f"SSL_CERT_FILE={os.environ['SSL_CERT_FILE']}", {"cafile": os.environ["SSL_CERT_FILE"]}
            elif os.environ.get("SSL_CERT_DIR"):
                where, kwargs = f"SSL_CERT_DIR={os.environ['SSL_CERT_DIR']}", {"capath": os.environ["SSL_CERT_DIR"]}
            else:
                import certifi

                where, kwargs = f"certifi's bundle {certifi.where()}", {"cafile": certifi.where()}
            try:
                _context = ssl.create_default_context(**kwargs)
            except (OSError, ssl.SSLError) as exc:
                from limner.providers.errors import InvalidRequest

                raise InvalidRequest(f"cannot load the CA certificates for TLS from {where}: "
                                     f"{getattr(exc, 'strerror', None) or exc}") from None
        return _context
