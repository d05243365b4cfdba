"""The review studio (``limner serve``): a small web app over a project's catalogue, database and storage
to see every entry's image, approve, reject, pin and regenerate renders, with a JSON API under ``/api/``.

Built on FastAPI, Jinja2 templates and a little plain JavaScript (no build step). The decisions themselves
are :class:`limner.db.review.Reviews`; a regeneration runs :func:`limner.review.regenerate` in a
background thread (:mod:`limner.studio.jobs`). See docs/review.md, "Review studio".

Nothing here is imported by the CLI until ``limner serve`` runs: FastAPI and uvicorn are the ``serve``
extra."""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):  # the app factory without importing FastAPI on ``import limner.studio``
    if name == "create_app":
        from limner.studio.app import create_app

        return create_app
    raise AttributeError(name)
