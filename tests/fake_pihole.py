"""A small fake of the Pi-hole v6 REST API on 127.0.0.1, for running the list reconciler for real.

It implements what the reconciler uses, with the shapes of FTL's OpenAPI specs
(src/api/docs/content/specs: auth.yaml, lists.yaml, domains.yaml, action.yaml): sessions by
``X-FTL-SID``, ``/api/lists?type=block``, ``/api/domains/allow/exact``, ``/api/action/gravity``.
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
    # (method, path prefix) -> list of injected responses: int status, or ("hang", seconds)
    fail: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
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
            return self._add(self.lists, call, "address", {"type": call.query["type"][0]})
        if path.startswith("/api/lists/") and call.method == "DELETE":
            return self._delete(self.lists, path.removeprefix("/api/lists/"))
        if path == "/api/domains/allow/exact" and call.method == "GET":
            return 200, {"domains": list(self.allow.values())}, js
        if path == "/api/domains/allow/exact" and call.method == "POST":
            return self._add(self.allow, call, "domain", {"type": "allow", "kind": "exact"})
        if path.startswith("/api/domains/allow/exact/") and call.method == "DELETE":
            return self._delete(self.allow, path.removeprefix("/api/domains/allow/exact/"))
        if path == "/api/action/gravity" and call.method == "POST":
            self.gravity_runs += 1
            return 200, b"  [i] Neutrino emissions detected...\n  [\xe2\x9c\x93] Done.\n", "text/plain"
        return 404, {"error": {"key": "not_found", "message": "Not found"}}, js

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
                errors.append({"item": item, "error": f"UNIQUE constraint failed: {key}"})
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


def _session(valid: bool, sid: str | None, message: str) -> dict[str, Any]:
    return {
        "valid": valid,
        "totp": False,
        "sid": sid,
        "csrf": sid and "csrf",
        "validity": 1800,
        "message": message,
    }
