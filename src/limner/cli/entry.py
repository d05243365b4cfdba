"""The ``limner`` console script: pause the garbage collector for the start-up, then run the Typer app.

Kept tiny on purpose: the imaging pool's workers import the script again (as ``__mp_main__``), and this
is all they find in it. ``limner --version`` is answered here, before Typer and the commands are
imported (they would triple its time); everything else (``--version`` among other options too) goes
through the app.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        _main()
    except KeyboardInterrupt:  # Ctrl-C before the command set its own handling (while importing): no traceback
        sys.stderr.write("limner: interrupted\n")
        raise SystemExit(130) from None


def _main() -> None:
    if sys.argv[1:] == ["--version"]:
        from limner import __version__

        sys.stdout.write(f"limner {__version__}\n")
        return
    # httpx imports its own command-line interface (click, rich, pygments: 30-60 ms) whenever they are
    # installed, and falls back to a stub when that import fails; this command never runs httpx's CLI
    sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]
    from limner.gcpause import pause_for_startup

    pause_for_startup()
    from limner.cli.app import main as run

    run()
