"""The labelling web app (Starlette): a labelling page, a monitoring page and a small JSON API.

Secure by default: the pages are static files that hold no data, and read everything through
the API with the token from the URL fragment (never sent to the server in a URL, never
logged); every API call needs ``Authorization: Bearer <token>`` (missing or unknown: 401 with
a JSON error, nothing written); bodies are size-limited and checked field by field; clips are
found by the item id in the caller's own queue, never by a path; the Host header must name
the address served (no DNS rebinding); answers are committed before the reply is sent.
Every malformed request (bad JSON, nesting too deep, numbers out of range, unknown paths)
gets a 4xx JSON error: no request makes the server fail (500).
"""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from rrm_data.annotation.campaign import campaign_criterion
from rrm_data.annotation.clips import ClipMaker
from rrm_data.annotation.monitor import summary
from rrm_data.annotation.store import ADMIN, CHOICES, AnswerError, Store

MAX_BODY = 4096
MAX_SECONDS = 24 * 3600.0
REQUEST_ID = re.compile(r"[A-Za-z0-9-]{8,64}")
PREFETCH = 2  # items whose clips are encoded ahead of the one being shown
STATIC = {"": ("label.html", "text/html"), "monitor": ("monitor.html", "text/html"),
          "static/label.js": ("label.js", "text/javascript"),
          "static/monitor.js": ("monitor.js", "text/javascript"),
          "static/style.css": ("style.css", "text/css")}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; "
                               "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_ITEM_ID = 2**63 - 1  # SQLite's largest integer
ANSWER_KEYS = {"item_id", "choice", "confidence", "seconds", "request_id"}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=HEADERS)


def check_answer(body: Any) -> str | None:
    """What is wrong with a posted answer, or None."""
    if not isinstance(body, dict) or set(body) != ANSWER_KEYS:
        return f"expected a JSON object with exactly the keys {', '.join(sorted(ANSWER_KEYS))}"
    if type(body["item_id"]) is not int or not 0 <= body["item_id"] <= MAX_ITEM_ID:
        return f"item_id must be an integer in [0, {MAX_ITEM_ID}]"
    if body["choice"] not in CHOICES:
        return f"choice must be one of {', '.join(CHOICES)}"
    if body["choice"] != "skip" and (type(body["confidence"]) is not int
                                     or not 1 <= body["confidence"] <= 3):
        return "confidence must be 1, 2 or 3"
    if body["choice"] == "skip" and body["confidence"] is not None:
        return "a skip has no confidence (null)"
    seconds = body["seconds"]
    if type(seconds) not in (int, float) or not 0 <= seconds <= MAX_SECONDS:
        return f"seconds must be a number in [0, {MAX_SECONDS:g}]"
    if not isinstance(body["request_id"], str) or not REQUEST_ID.fullmatch(body["request_id"]):
        return "request_id must be 8-64 letters, digits or '-'"
    return None


class AnnotationApp:
    """Holds the store and the clip maker; ``app`` is the ASGI application."""

    def __init__(self, store: Store, clips: ClipMaker, threshold: float,
                 hosts: list[str]) -> None:
        self.store, self.clips, self.threshold = store, clips, threshold
        self.criterion = campaign_criterion(store.settings)  # the page's question
        # One thread: rendering contexts belong to the thread that created them.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clips")
        self._clips: dict[int, asyncio.Future] = {}
        self._jobs: list[Future] = []
        routes = [Route("/api/next", self.next_item),
                  Route("/api/label", self.label, methods=["POST"]),
                  Route("/api/clip/{item_id:str}/{side:str}", self.clip),
                  Route("/api/stats", self.stats)]
        routes += [Route(f"/{path}", self.static) for path in STATIC]
        self._warm_up()
        self.app = Starlette(routes=routes,
                             middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
                             exception_handlers={HTTPException: self.http_error})

    def _warm_up(self) -> None:
        """Encode everyone's next comparison before serving (so it opens at once, and a clip
        that cannot be made fails here, in one line), and the ones after it in the background."""
        queues = [self.store.pending(name, 1 + PREFETCH) for name in self.store.annotators()]
        first = []
        for depth in range(1 + PREFETCH):
            for _, left, right, _ in (q[depth] for q in queues if depth < len(q)):
                jobs = [self._submit(s) for s in (left, right)]
                if depth == 0:
                    first += jobs
        for job in first:
            job.result()

    def _submit(self, segment: int) -> Future:
        job = self.executor.submit(self.clips.ensure, segment)
        self._jobs = [j for j in self._jobs if not j.done()] + [job]
        return job

    def close(self) -> None:
        """Drop queued encodings, then free the renderers in the thread that made them."""
        for job in self._jobs:
            job.cancel()
        self.executor.submit(self.clips.close).result()
        self.executor.shutdown()

    def _caller(self, request: Request) -> tuple[str, str] | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return self.store.who(token.strip()) if scheme.lower() == "bearer" else None

    def _encode(self, segment: int) -> asyncio.Future:
        """The clip of a segment, encoded once in the clip thread (shared by all callers)."""
        future = self._clips.get(segment)
        if future is None and self.clips.path(segment).is_file():  # made before, e.g. warm-up
            future = asyncio.get_running_loop().create_future()
            future.set_result(self.clips.path(segment))
            self._clips[segment] = future
        if future is None or (future.done() and future.exception() is not None):
            future = asyncio.wrap_future(self._submit(segment))
            # a prefetch may go unawaited: look at its outcome so asyncio does not warn
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._clips[segment] = future
        return future

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (unknown path, wrong method) as JSON errors too."""
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, exc.detail)

    async def static(self, request: Request) -> Response:
        name, media = STATIC[request.url.path.lstrip("/")]
        text = (resources.files("rrm_data.annotation") / "static" / name).read_text()
        return Response(text, media_type=media, headers=HEADERS)

    async def next_item(self, request: Request) -> Response:
        caller = self._caller(request)
        if caller is None or caller[1] == ADMIN:
            return error(401, "missing or invalid annotator token")
        name = caller[0]
        upcoming = self.store.pending(name, 1 + PREFETCH)
        for _, left, right, _ in upcoming:
            self._encode(left), self._encode(right)
        done, total = self.store.progress(name)
        item = None
        if upcoming:
            item_id, left, right, _ = upcoming[0]
            item = {"id": item_id, "left": f"/api/clip/{item_id}/left",
                    "right": f"/api/clip/{item_id}/right",
                    "tasks": [self.clips.task(left), self.clips.task(right)]}
        return JSONResponse({"annotator": name, "answered": done, "total": total, "item": item,
                             "criterion": self.criterion},
                            headers=HEADERS)

    async def clip(self, request: Request) -> Response:
        caller = self._caller(request)
        if caller is None or caller[1] == ADMIN:
            return error(401, "missing or invalid annotator token")
        side, item_id = request.path_params["side"], request.path_params["item_id"]
        # digits only, and few enough for SQLite's integers
        sides = (self.store.sides(caller[0], int(item_id))
                 if re.fullmatch(r"[0-9]{1,18}", item_id) else None)
        if side not in ("left", "right") or sides is None:
            return error(404, "no such clip in your queue")
        path = await self._encode(sides[0] if side == "left" else sides[1])
        return FileResponse(path, media_type="video/webm",
                            headers={**HEADERS, "Cache-Control": "private, max-age=3600"})

    async def label(self, request: Request) -> Response:
        caller = self._caller(request)
        if caller is None or caller[1] == ADMIN:
            return error(401, "missing or invalid annotator token")
        if "application/json" not in request.headers.get("content-type", ""):
            return error(415, "send the answer as application/json")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return error(413, f"body larger than {MAX_BODY} bytes")
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError):  # bad JSON or text, nested too deep
            return error(400, "body is not valid JSON (or nested too deep)")
        problem = check_answer(answer)
        if problem:
            return error(400, problem)
        try:
            stored = self.store.answer(caller[0], answer["item_id"], answer["choice"],
                                       answer["confidence"], float(answer["seconds"]),
                                       answer["request_id"])
        except AnswerError as exc:
            return error(exc.status, str(exc))
        return JSONResponse({"stored": True, "answer_id": stored.answer_id,
                             "repeated": stored.repeated}, headers=HEADERS)

    async def stats(self, request: Request) -> Response:
        caller = self._caller(request)
        if caller is None:
            return error(401, "missing or invalid token")
        if caller[1] != ADMIN:
            return error(403, "the monitoring page needs the admin token")
        return JSONResponse(summary(self.store.answers(), self.store.items(),
                                    self.store.annotators(), self.threshold), headers=HEADERS)


__all__ = ["AnnotationApp", "check_answer"]
