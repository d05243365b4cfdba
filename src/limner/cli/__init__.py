"""The ``limner`` command line (Typer). One module per command under ``commands/``."""
