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
    """The shared context (built on first use; thread-safe)."""
    global _context
    with _lock:
        if _context is None:
            if os.environ.get("SSL_CERT_FILE"):
                _context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
            elif os.environ.get("SSL_CERT_DIR"):
                _context = ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
            else:
                import certifi

                _context = ssl.create_default_context(cafile=certifi.where())
        return _context
