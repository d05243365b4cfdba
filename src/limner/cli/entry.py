"""The ``limner`` console script: pause the garbage collector for the start-up, then run the Typer app.

Kept tiny on purpose: the imaging pool's workers import the script again (as ``__mp_main__``), and this
is all they find in it.
"""

from __future__ import annotations


def main() -> None:
    from limner.gcpause import pause_for_startup

    pause_for_startup()
    from limner.cli.app import main as run

    run()
