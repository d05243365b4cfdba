"""The studio's ASGI app: :func:`create_app` over a project (or its settings)."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from limner.config.settings import Settings
from limner.project import Project
from limner.studio import api, pages
from limner.studio.data import StudioData
from limner.studio.jobs import Jobs
from limner.studio.security import Guard, GuardMiddleware, allowed_hosts

HERE = Path(__file__).resolve().parent
#: a stored object's key: relative, plain segments (no ``..``, no backslashes, no scheme)
KEY_PATTERN = re.compile(r"^(?!/)(?!.*//)(?!.*(?:^|/)\.\.?(?:/|$))[A-Za-z0-9._\-/]{1,512}$")
CONTENT_TYPES = {"avif": "image/avif", "webp": "image/webp", "jpg": "image/jpeg", "jpeg": "image/jpeg",
                 "png": "image/png", "gif": "image/gif"}


class Studio:
    """What the routes share: the project (reads and decisions), the cached catalogue, the guard, the jobs."""

    def __init__(self, project: Project, guard: Guard, *, owns_project: bool) -> None:
        self.project = project
        self.guard = guard
        self.data = StudioData(project)
        self.jobs = Jobs(project.settings, on_finished=lambda job: self.data.invalidate())
        self.owns_project = owns_project

    def close(self) -> None:
        self.jobs.shutdown()
        if self.owns_project:
            self.project.close()


def create_app(source: Settings | Project, token: str | None = None, *, host: str = "127.0.0.1",
               extra_hosts: Iterable[str] = ()) -> FastAPI:
    """The review studio over ``source``'s catalogue, database and storage.

    ``token``: required from every client (see :mod:`limner.studio.security`); None: none (loopback only,
    which ``limner serve`` enforces). ``host``: the address the server binds, for the Host-header check;
    ``extra_hosts``: more host names it answers to."""
    project = source if isinstance(source, Project) else Project(source)
    studio = Studio(project, Guard(token), owns_project=not isinstance(source, Project))

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        try:
            yield
        finally:
            studio.close()

    app = FastAPI(title="Limner review studio", version="1", openapi_url="/api/openapi.json", docs_url=None,
                  redoc_url=None, lifespan=lifespan,
                  description="See, approve, reject, pin and regenerate a catalogue's images. "
                              "State-changing requests need `X-CSRF-Token` (from `GET /api/session`) or "
                              "`Authorization: Bearer <token>`.")
    app.state.studio = studio

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        """422 with where and what, without echoing the input (a value JSON cannot carry, such as 1e309,
        made FastAPI's own answer a 500)."""
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/media/{key:path}", include_in_schema=False)
    def media(key: str) -> Response:
        if not KEY_PATTERN.match(key) or not studio.project.reviews.media_key_known(key):
            raise HTTPException(404, "no such media")
        from limner.storage import ObjectMissing, StorageError

        try:
            data = studio.project.storage.get(key)
        except ObjectMissing:
            raise HTTPException(404, "no such media") from None
        except StorageError as exc:  # there may well be such media: the store did not answer
            raise HTTPException(502, f"the storage could not be read: {exc}") from None
        ext = key.rsplit(".", 1)[-1].lower()
        content_type = CONTENT_TYPES.get(ext) or mimetypes.guess_type(key)[0] or "application/octet-stream"
        return Response(data, media_type=content_type,
                        headers={"cache-control": "private, max-age=31536000, immutable"})

    @app.get("/login", include_in_schema=False)
    def login(request: Request, token: str = "") -> Response:
        guard = studio.guard
        if not guard.required:
            return RedirectResponse("/", status_code=303)
        if not guard.token_ok(token):
            return Response("<!doctype html><meta charset=utf-8><title>Limner studio</title><h1>401</h1>"
                            "<p>Wrong token.</p>", status_code=401, media_type="text/html")
        # a page that moves on to the grid itself, not a redirect: a log-in reached from another site (the page
        # `limner serve --open` gives the browser is a file://) is a cross-site navigation, and a browser sends no
        # SameSite=Strict cookie on a redirect of it (401); a navigation the studio's own page starts is same-site
        response = Response('<!doctype html><meta charset=utf-8><meta http-equiv="refresh" content="0;url=/">'
                            '<title>Limner studio</title><p><a href="/">Open the review studio</a></p>',
                            media_type="text/html")
        response.headers.append("set-cookie", guard.session_cookie_header())
        return response

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    # outermost last: the Host check first, then the guard
    app.add_middleware(GuardMiddleware, guard=studio.guard)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host, extra_hosts))
    return app


def studio_of(app: Any) -> Studio:
    return app.state.studio


__all__ = ["Studio", "create_app", "studio_of"]
