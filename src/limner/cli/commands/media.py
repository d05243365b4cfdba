"""``limner media serve``: the local storage folder over http on 127.0.0.1, read-only, for local development."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from limner.cli.context import friendly, out
from limner.errors import ConfigError

media_app = typer.Typer(help="Work with the stored media (masters and variants).", no_args_is_help=True,
                        add_completion=False, rich_markup_mode=None)


def _local_root(ctx: typer.Context) -> Path:
    from urllib.parse import urlsplit

    from limner.config import load_settings

    settings = load_settings(ctx.ensure_object(dict).get("config"))
    url = settings.storage.url
    scheme = urlsplit(url).scheme
    if len(scheme) > 1 and scheme != "file":
        from limner.urls import shown_url

        raise ConfigError(f"storage.url {shown_url(url)!r} is not a local folder: its objects are served by the storage itself",
                          hint="set storage.public_base_url, or pass --root with a local copy (`limner upload` makes one)")
    return settings.path(url[len("file://"):] if url.startswith("file://") else url)


def register(app: typer.Typer) -> None:
    @media_app.command("serve")
    @friendly
    def serve_cmd(
        ctx: typer.Context,
        host: Annotated[str, typer.Option("--host", help="Interface to listen on (loopback by default).")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port (0: any free port).", min=0, max=65535)] = 8766,
        root: Annotated[Optional[Path], typer.Option("--root", help="Folder to serve (default: the local storage.url).")] = None,
        verbose: Annotated[bool, typer.Option("--log", help="Log each request on stderr.")] = False,
    ) -> None:
        """Serve the local media folder read-only over http (for local development); Ctrl-C stops it."""
        from limner.storage.serve import MediaServer

        folder = root if root is not None else _local_root(ctx)
        if not folder.is_dir():
            raise ConfigError(f"no media folder at {folder}", hint="run `limner generate` first, or pass --root")
        try:
            server = MediaServer(folder, host, port, verbose=verbose)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint="choose another --port") from None
        out.print(f"Serving {folder} read-only at {server.base_url}", highlight=False, markup=False)
        out.print(f"Pass it as the base: getImageProps(manifest, id, {{ base: '{server.base_url}' }})",
                  highlight=False, markup=False)
        out.file.flush()
        from limner.gcpause import startup_over

        startup_over()  # a long-running process: the garbage collector back on (see gcpause.py)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

    app.add_typer(media_app, name="media")
