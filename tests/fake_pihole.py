"""A small fake of the Pi-hole v6 REST API on 127.0.0.1, for running the list reconciler for real.

It implements what the reconciler uses, with the shapes of FTL's OpenAPI specs
(pi-hole/FTL v6.4.1 src/api/docs/content/specs: auth.yaml, lists.yaml, domains.yaml,
action.yaml): sessions by ``X-FTL-SID`` and at most ``max_sessions`` of them (429
``api_seats_exceeded``, src/api/auth.c), ``/api/lists?type=block`` with each list's ``status``,
``/api/domains/allow/exact``, and ``/api/action/gravity``, which answers 200 and streams
gravity's output in chunks whatever happens (src/api/action.c run_and_stream_command). The
output's lines and the list statuses are gravity.sh's (pi-hole/pi-hole v6.2.2: "[✗]" marks a
failure; status 1 updated, 2 unchanged, 3 download failed with a cached copy, 4 failed without).
Adding an existing item answers 201 with a per-item UNIQUE error, as FTL's database does.
Every request is recorded; ``fail`` injects errors to exercise retries and failure paths.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Call:
    method: str
    path: str  # decoded path without the query
    query: dict[str, list[str]]
    body: Any
    sid: str | None


@dataclass
class FakePihole:
    password: str = "correct horse"
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)  # address -> list object
    allow: dict[str, dict[str, Any]] = field(default_factory=dict)  # domain -> domain object
    sessions: set[str] = field(default_factory=set)
    calls: list[Call] = field(default_factory=list)
    # (method, path prefix) -> list of injected responses: int status, ("hang", seconds), or
    # ("applied", status): the request takes effect but its answer is lost (status instead).
    fail: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    # webserver.api.max_sessions (FTL's default is 16)
    max_sessions: int = 16
    # block list address -> how gravity fails to download it: "cached" (status 3) or "gone" (4)
    broken: dict[str, str] = field(default_factory=dict)
    gravity_runs: int = 0
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _handle(self) -> None:
                status, payload, ctype = fake.handle(self)
                if isinstance(payload, Chunks):
                    self._stream(status, payload, ctype)
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    if status != 204:
                        self.send_header("Content-Type", ctype)
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if status != 204:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _stream(self, status: int, chunks: Chunks, ctype: str) -> None:
                """Like FTL: 200 with a chunked body (mg_send_http_ok with length -1)."""
                self.protocol_version = "HTTP/1.1"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for chunk in chunks.parts:
                        self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            do_GET = do_POST = do_DELETE = do_PUT = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what was done -------------------------------------------------------------------------
    def made(self, method: str, prefix: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.startswith(prefix)]

    # --- the API -------------------------------------------------------------------------------
    def handle(self, req: BaseHTTPRequestHandler) -> tuple[int, Any, str]:
        url = urlsplit(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        sid = req.headers.get("X-FTL-SID")
        call = Call(req.command, unquote(url.path), parse_qs(url.query), body, sid)
        with self._lock:
            self.calls.append(call)
            injected = self._injected(call)
        if isinstance(injected, tuple) and injected[0] == "applied":
            with self._lock:
                self._route(call)
            return int(injected[1]), {"error": {"key": "lost", "message": "answer lost"}}, "application/json"
        if injected is not None:
            if isinstance(injected, tuple) and injected[0] == "hang":
                time.sleep(injected[1])
                return 504, {"error": {"key": "timeout", "message": "hung"}}, "application/json"
            return (
                int(injected),
                {"error": {"key": "injected", "message": "injected failure"}},
                "application/json",
            )
        with self._lock:
            return self._route(call)

    def _injected(self, call: Call) -> Any:
        for (method, prefix), queue in self.fail.items():
            if call.method == method and call.path.startswith(prefix) and queue:
                return queue.pop(0)
        return None

    def _route(self, call: Call) -> tuple[int, Any, str]:
        js = "application/json"
        path = call.path
        if path == "/api/auth" and call.method == "POST":
            if (call.body or {}).get("password") != self.password:
                return 401, {"session": _session(False, None, "password incorrect")}, js
            if len(self.sessions) >= self.max_sessions:
                return (
                    429,
                    {
                        "error": {
                            "key": "api_seats_exceeded",
                            "message": "API seats exceeded",
                            "hint": "increase webserver.api.max_sessions",
                        },
                        "took": 0.003,
                    },
                    js,
                )
            self._next += 1
            sid = f"sid-{self._next}"
            self.sessions.add(sid)
            return 200, {"session": _session(True, sid, "password correct")}, js
        if call.sid not in self.sessions:
            return 401, {"error": {"key": "unauthorized", "message": "Unauthorized", "hint": None}}, js
        if path == "/api/auth" and call.method == "DELETE":
            self.sessions.discard(call.sid)
            return 204, b"", js
        if path == "/api/lists" and call.method == "GET":
            kind = call.query.get("type", [None])[0]
            return 200, {"lists": [v for v in self.lists.values() if kind in (None, v["type"])]}, js
        if path == "/api/lists" and call.method == "POST":
            return self._add(
                self.lists, call, "address", {"type": call.query["type"][0], "status": 0, "number": 0}
            )
        if path.startswith("/api/lists/") and call.method == "DELETE":
            return self._delete(self.lists, path.removeprefix("/api/lists/"))
        if path == "/api/domains/allow/exact" and call.method == "GET":
            return 200, {"domains": list(self.allow.values())}, js
        if path == "/api/domains/allow/exact" and call.method == "POST":
            return self._add(self.allow, call, "domain", {"type": "allow", "kind": "exact"})
        if path.startswith("/api/domains/allow/exact/") and call.method == "DELETE":
            return self._delete(self.allow, path.removeprefix("/api/domains/allow/exact/"))
        if path == "/api/action/gravity" and call.method == "POST":
            return 200, self._gravity(), "text/plain"
        return 404, {"error": {"key": "not_found", "message": "Not found"}}, js

    def _gravity(self) -> Chunks:
        """gravity.sh's output for the block lists, and their status afterwards."""
        self.gravity_runs += 1
        over = "\r\x1b[K"  # gravity.sh's OVER, printed before a status line replaces the last
        lines = ["  [i] Neutrino emissions detected...", "  [✓] Preparing new gravity database"]
        for address, item in self.lists.items():
            if item["type"] != "block":
                continue
            lines.append(f"  [i] Target: {address}")
            how = self.broken.get(address)
            if how is None:
                lines.append(f"{over}  [✓] Status: Retrieval successful")
                item["status"] = 1 if item.get("status") in (0, None) else 2
                item["number"] = 1000
                continue
            lines.append(f"{over}  [✗] Status: Not found")
            if how == "cached":
                lines.append("  [✗] List download failed: using previously cached list")
                item["status"] = 3
            else:
                lines.append("  [✗] List download failed: no cached list available")
                item["status"], item["number"] = 4, 0
        lines += ["  [✓] Building tree", "  [✓] Done."]
        text = ("\n".join(lines) + "\n").encode()
        # FTL sends each read of the pipe (up to 1023 bytes) as one chunk
        return Chunks([text[i : i + 1023] for i in range(0, len(text), 1023)])

    def _add(self, store: dict, call: Call, key: str, extra: dict) -> tuple[int, Any, str]:
        items = call.body.get(key) if isinstance(call.body, dict) else None
        if items is None:
            return (
                400,
                {"error": {"key": "bad_request", "message": f"No {key} in payload"}},
                "application/json",
            )
        success, errors = [], []
        for item in items if isinstance(items, list) else [items]:
            if item in store:
                table = (
                    "adlist.address, adlist.type"
                    if key == "address"
                    else "domainlist.domain, domainlist.type"
                )
                errors.append({"item": item, "error": f"UNIQUE constraint failed: {table}"})
                continue
            self._next += 1
            store[item] = {
                key: item,
                "comment": call.body.get("comment"),
                "groups": call.body.get("groups", [0]),
                "enabled": call.body.get("enabled", True),
                "id": self._next,
                **extra,
            }
            success.append({"item": item})
        reply = {key + "s" if key == "domain" else "lists": [store[s["item"]] for s in success]}
        reply["processed"] = {"success": success, "errors": errors}
        return 201, reply, "application/json"

    def _delete(self, store: dict, item: str) -> tuple[int, Any, str]:
        if item not in store:
            return 404, {"took": 0.0}, "application/json"
        del store[item]
        return 204, b"", "application/json"


@dataclass
class Chunks:
    """A streamed (chunked) response body."""

    parts: list[bytes]


def _session(valid: bool, sid: str | None, message: str) -> dict[str, Any]:
    return {
        "valid": valid,
        "totp": False,
        "sid": sid,
        "csrf": sid and "csrf",
        "validity": 1800,
        "message": message,
    }
