"""A small client of the simulated cluster's API server (stdlib only): JSON over HTTPS with the
admin's client certificate, for the harness's polling loops and checks (one kubectl process
per poll would cost more than the poll)."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import yaml


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Api:
    """``get``/``list``/``create``/``patch``/``delete`` on paths such as /api/v1/nodes."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
        cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
        user = next(u for u in config["users"] if u["name"] == context["user"])["user"]
        url = urllib.parse.urlsplit(cluster["server"])
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 443
        if url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"{kubeconfig}: server {cluster['server']} is not on loopback")
        self._tmp = tempfile.TemporaryDirectory(prefix="e2e-api-")
        files = {}
        for key in ("certificate-authority", "client-certificate", "client-key"):
            if f"{key}-data" in {**cluster, **user}:
                path = Path(self._tmp.name) / key
                path.write_bytes(base64.b64decode({**cluster, **user}[f"{key}-data"]))
                files[key] = str(path)
            else:
                files[key] = {**cluster, **user}[key]
        self.context = ssl.create_default_context(cafile=files["certificate-authority"])
        self.context.load_cert_chain(files["client-certificate"], files["client-key"])
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=30, context=self.context)
            self._local.conn = conn
        return conn

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        if resp.status >= 300:
            try:
                message = json.loads(raw).get("message", raw.decode(errors="replace"))
            except ValueError:
                message = raw.decode(errors="replace")
            raise ApiError(resp.status, f"{method} {path}: {message}")
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def items(self, path: str) -> list[dict[str, Any]]:
        return list(self.get(path).get("items") or [])

    def create(self, path: str, obj: Any) -> Any:
        return self.request("POST", path, obj)

    def merge_patch(self, path: str, patch: Any) -> Any:
        return self.request("PATCH", path, patch, "application/merge-patch+json")

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._tmp.cleanup()
