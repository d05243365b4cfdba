"""``limner serve``: the review studio, a web app over the project (see docs/review.md, "Review studio")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from limner.cli.context import err, friendly, get_project, out


def register(app: typer.Typer) -> None:
    @app.command("serve")
    @friendly
    def serve_cmd(
        ctx: typer.Context,
        host: Annotated[Optional[str], typer.Option("--host", help="Address to bind (default: [review] host, 127.0.0.1). "
                                                    "Any non-loopback address needs a token.")] = None,
        port: Annotated[Optional[int], typer.Option("--port", min=0, max=65535,
                                                    help="Port (default: [review] port, 8765).")] = None,
        token: Annotated[Optional[bool], typer.Option("--token/--no-token", help="Require a token (LIMNER_SERVE_TOKEN, or one "
                                                      "generated and printed once). Default: required when binding beyond "
                                                      "loopback or when LIMNER_SERVE_TOKEN is set.", show_default=False)] = None,
        open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the studio in a web browser.")] = False,
        allowed_host: Annotated[Optional[list[str]], typer.Option("--allowed-host", metavar="NAME", help="Another host name the studio "
                                                                  "answers to (repeatable; for a name or proxy in front of it).")] = None,
    ) -> None:
        """Serve the review studio: see, approve, reject, pin and regenerate every entry's image."""
        try:
            import uvicorn

            from limner.studio.app import create_app
        except ImportError as exc:
            from limner.errors import ConfigError

            raise ConfigError(f"limner serve needs FastAPI and uvicorn ({exc.name} is not installed)",
                              hint="pip install -e '/path/to/limner[serve]'") from None
        from limner.studio.security import is_loopback, resolve_token

        project = get_project(ctx)
        settings = project.settings
        bind = host or settings.review.host
        bind_port = settings.review.port if port is None else port
        bind_port = _can_listen(bind, bind_port, settings.source_of("review", "host") if host is None else "option --host",
                                settings.source_of("review", "port") if port is None else "option --port")
        secret, generated = resolve_token(settings.secret, bind, token)
        _ = project.catalog  # a bad catalogue is reported now, not on the first request
        app = create_app(project, token=secret, host=bind, extra_hosts=allowed_host or ())
        shown = "localhost" if bind in ("0.0.0.0", "::") else (f"[{bind}]" if ":" in bind else bind)
        url = f"http://{shown}:{bind_port}/"
        if secret is None:
            out.print(f"Limner review studio: {url}", highlight=False)
            login = url
        else:
            login = f"{url}login?token={secret}"
            if generated:
                out.print(f"Limner review studio: {login}", highlight=False)
                out.print("A token was generated for this run (set LIMNER_SERVE_TOKEN to keep one); "
                          f"API clients send 'Authorization: Bearer {secret}'.", highlight=False)
            else:
                out.print(f"Limner review studio: {url}login?token=<LIMNER_SERVE_TOKEN>", highlight=False)
        if not is_loopback(bind):
            err.print(f"warning: serving on {bind}, beyond this machine; plain HTTP: put TLS in front of it on an "
                      "untrusted network", highlight=False, markup=False)
        forward = None
        if open_browser:
            import threading
            import webbrowser

            # a token in the browser's arguments is in every user's `ps`: the browser opens a file only
            # this user can read, which forwards to the log-in address (Jupyter's way)
            forward = None if secret is None else _forwarding_page(login)
            if forward is not None:
                _remove_on_sigterm(forward.parent)
            threading.Timer(1.0, webbrowser.open, args=(login if forward is None else forward.as_uri(),)).start()
        _quiet_token_in_logs()
        from limner.gcpause import startup_over

        startup_over()  # a long-running process: the garbage collector back on (see gcpause.py)
        try:
            uvicorn.run(app, host=bind, port=bind_port, log_level="info", server_header=False)
        finally:
            project.close()
            if forward is not None:
                import shutil

                shutil.rmtree(forward.parent, ignore_errors=True)


def _remove_on_sigterm(folder: Path) -> None:
    """Remove ``folder`` when a SIGTERM ends the server: uvicorn shuts down, then raises the signal again,
    whose default action would end the process before any ``finally``; it still ends by that signal."""
    import shutil
    import signal

    def remove_then_end(signum: int, _frame: object) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, remove_then_end)


def _forwarding_page(login: str) -> Path:
    """An HTML page that sends the browser to ``login``, in a new folder only this user may open (0700;
    the file is 0600); the server removes it when it stops."""
    import html
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="limner-serve-"))
    page = folder / "open.html"
    target = html.escape(login, quote=True)
    fd = os.open(page, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={target}">'
                 f'<title>Limner review studio</title><p><a href="{target}">Open the Limner review studio</a></p>\n')
    return page


def _can_listen(bind: str, port: int, host_from: str, port_from: str) -> int:
    """The port the studio will listen on (a free one for 0, known before the server starts so the address can be
    printed), after a trial bind: an address that is not this machine's, a host name that does not resolve or a
    port in use was found by uvicorn only after the address and a login token had been printed, and it exited 3,
    the code of a rejected credential."""
    import socket

    from limner.errors import ConfigError

    try:
        family, _, _, _, address = socket.getaddrinfo(bind.strip("[]") or None, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
            return port or probe.getsockname()[1]
    except OSError as exc:  # socket.gaierror included
        raise ConfigError(f"cannot listen on {bind}:{port} ({host_from}, {port_from}): {exc.strerror or exc}",
                          hint="give another address or port: --host/--port, or [review] host and port") from None


def _quiet_token_in_logs() -> None:
    """The access log shows ``/login?token=…`` as ``/login?token=[hidden]``."""
    import logging
    import re

    pattern = re.compile(r"(token=)[^&\s\"]+")

    class Redact(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if isinstance(record.args, tuple):
                record.args = tuple(pattern.sub(r"\1[hidden]", a) if isinstance(a, str) else a for a in record.args)
            return True

    logging.getLogger("uvicorn.access").addFilter(Redact())
