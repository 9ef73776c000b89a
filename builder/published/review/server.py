"""The review page's server: the standard library's `ThreadingHTTPServer`, a handful of routes.

No web framework is needed: the page is one static HTML/JS/CSS file set, the API is four JSON
routes and one image route for a single local user (or a few), and the standard library gives
threading, request parsing and safe static serving without a new dependency to pin and audit.

Routes: `/` and `/static/<file>` (the page), `GET /api/items` (queues, items, flags),
`GET /api/decisions` (latest decision per id and reviewer), `GET /img?q=&id=&v=` (a view as PNG),
`POST /api/decide` (one decision, appended and fsynced before the reply).

Bound to 127.0.0.1 by default, where the Host header must name the loopback (no DNS rebinding).
Another interface only with an explicit host, and then every request must carry the random token
(`?token=`, the `X-Review-Token` header, or the cookie the page gets with its first answer).
"""
from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import secrets
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from builder.core.decisions import CRITERIA, PAPER_CRITERIA, Decision, Decisions, append_decision, read_decisions
from builder.core.errors import ReviewError
from builder.published.review.queues import Queues

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8"}
MAX_BODY = 64 * 1024
COOKIE = "review_token"


class Review:
    """What the handler serves: the queues, the decisions file and who is reviewing."""

    def __init__(self, queues: Queues, decisions: Path, reviewer: str, token: str | None = None):
        self.queues, self.decisions, self.reviewer, self.token = queues, Path(decisions), reviewer, token
        if self.decisions.is_file():
            read_decisions(self.decisions)  # a bad file is named now, not at the first click

    def latest(self) -> dict:
        if not self.decisions.is_file():
            return {}
        out: dict = {}
        for (i, r), d in sorted(Decisions.read(self.decisions).latest.items()):
            out.setdefault(i, {})[r] = {"decision": d.decision, "criterion": d.criterion, "note": d.note,
                                        "time": d.time}
        return out

    def decide(self, body: dict) -> dict:
        item = self.queues.item(str(body.get("queue", "")), str(body.get("id", "")))
        decision = str(body.get("decision", ""))
        d = Decision(item.id, decision, str(body.get("criterion") or "") if decision == "discard" else "",
                     str(body.get("reviewer") or self.reviewer), str(body.get("note") or "")[:2000],
                     dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        append_decision(self.decisions, d)
        return {"ok": True, "id": item.id, "decisions": self.latest().get(item.id, {})}


class ReviewHandler(BaseHTTPRequestHandler):
    """One request; `make_server` subclasses it with the `review` to serve and the Host names allowed
    (None: any, when a token guards every request)."""

    server_version = "cgddi-review"
    review: Review
    allowed_hosts: set[str] | None = None
    authed = False

    def log_message(self, fmt, *args):  # the terminal stays quiet; -v shows requests
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.review.token is not None and self.authed:  # the page's files and images carry it back as a cookie
            self.send_header("Set-Cookie", f"{COOKIE}={self.review.token}; HttpOnly; SameSite=Strict; Path=/")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self'")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _allowed(self, query: dict) -> bool:
        if self.allowed_hosts is not None and self.headers.get("Host", "") not in self.allowed_hosts:
            self._json({"error": "unexpected Host header"}, HTTPStatus.FORBIDDEN)
            return False
        if self.review.token is not None:
            given = (self.headers.get("X-Review-Token") or (query.get("token") or [""])[0]
                     or _cookie(self.headers.get("Cookie", "")))
            if not hmac.compare_digest(given.encode(), self.review.token.encode()):
                self._json({"error": "missing or wrong token"}, HTTPStatus.FORBIDDEN)
                return False
        self.authed = True
        return True

    def do_GET(self):  # http.server's name
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._allowed(query):
            return
        try:
            self._get(url.path, query)
        except ReviewError as e:
            self._json({"error": str(e)}, HTTPStatus.NOT_FOUND)

    def _get(self, path: str, query: dict) -> None:
        if path in ("/", "/index.html"):
            path = "/static/index.html"
        if path.startswith("/static/") and path[len("/static/"):] in STATIC:
            name = path[len("/static/"):]
            self._send(200, resources.files(__package__).joinpath("static", name).read_bytes(), STATIC[name])
        elif path == "/api/items":
            self._json({"queues": self.review.queues.to_json(), "reviewer": self.review.reviewer,
                        "criteria": list(CRITERIA), "paper_criteria": list(PAPER_CRITERIA)})
        elif path == "/api/decisions":
            self._json(self.review.latest())
        elif path == "/img":
            q, i, v = ((query.get(k) or [""])[0] for k in ("q", "id", "v"))
            self._send(200, self.review.queues.view_png(q, i, v), "image/png")
        else:
            self._json({"error": f"no route {path}"}, HTTPStatus.NOT_FOUND)

    def do_POST(self):
        url = urlsplit(self.path)
        if not self._allowed(parse_qs(url.query)):
            return
        if url.path != "/api/decide":
            return self._json({"error": f"no route {url.path}"}, HTTPStatus.NOT_FOUND)
        n = int(self.headers.get("Content-Length") or 0)
        if not 0 < n <= MAX_BODY or "json" not in (self.headers.get("Content-Type") or ""):
            return self._json({"error": "expected a JSON body under 64 KiB"}, HTTPStatus.BAD_REQUEST)
        try:
            body = json.loads(self.rfile.read(n))
            if not isinstance(body, dict):
                return self._json({"error": "expected a JSON object"}, HTTPStatus.BAD_REQUEST)
            self._json(self.review.decide(body))
        except (ValueError, ReviewError) as e:
            self._json({"error": str(e)}, HTTPStatus.BAD_REQUEST)


def _cookie(header: str) -> str:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


def make_server(review: Review, host: str | None = None, port: int = 8765) -> tuple[ThreadingHTTPServer, str]:
    """The server (not yet serving) and the page's URL. `host` None: the loopback only, no token needed;
    any explicit host: a fresh random token guards every request."""
    bind = host or LOOPBACK
    if host is not None:
        review.token = secrets.token_urlsafe(24)
    server = ThreadingHTTPServer((bind, port), None)
    port = server.server_address[1]
    allowed = None if host is not None else {f"{LOOPBACK}:{port}", f"localhost:{port}"}
    server.RequestHandlerClass = type("Handler", (ReviewHandler,), {"review": review, "allowed_hosts": allowed})
    server.daemon_threads = True
    url = f"http://{LOOPBACK if host is None else host}:{port}/" + (f"?token={review.token}" if review.token else "")
    return server, url
