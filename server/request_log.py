"""The last N requests the endpoint received, in SQLite so that every gunicorn worker shares it.

Secrets never reach it: base64 image data is replaced by its size, URL query strings (a
presigned URL's signature) are cut off, and auth headers are not stored at all.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    route TEXT NOT NULL,
    client TEXT,
    image_source TEXT,
    bbox TEXT,
    status_code INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    request_json TEXT,
    response_json TEXT
)
"""
MAX_STORED_RESULTS = 50


def redact_url(url: str) -> str:
    """Scheme, host and path only: the query of a presigned URL is a credential."""
    parts = urlsplit(url)
    redacted = urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))
    return redacted + ("?…" if parts.query else "")


def redact_request(body: Any) -> Any:
    """A copy of the request body safe to store and show."""
    if not isinstance(body, dict):
        return body
    redacted = dict(body)
    image = body.get("image")
    if isinstance(image, dict):
        image = dict(image)
        if isinstance(image.get("base64"), str):
            image["base64"] = f"<{len(image['base64'])} base64 characters>"
        if isinstance(image.get("url"), str):
            image["url"] = redact_url(image["url"])
        redacted["image"] = image
    return redacted


def image_source(body: Any) -> str | None:
    image = body.get("image") if isinstance(body, dict) else None
    if not isinstance(image, dict):
        return None
    if isinstance(image.get("url"), str):
        return f"url {urlsplit(image['url']).hostname or '?'}"
    if isinstance(image.get("base64"), str):
        return f"base64 {len(image['base64']) * 3 // 4} bytes"
    return None


def shorten_response(response: Any) -> Any:
    if isinstance(response, dict) and isinstance(response.get("results"), list):
        results = response["results"]
        if len(results) > MAX_STORED_RESULTS:
            response = {
                **response,
                "results": results[:MAX_STORED_RESULTS],
                "results_cut": f"{len(results) - MAX_STORED_RESULTS} more not stored",
            }
    return response


@dataclass(frozen=True)
class RequestLog:
    path: Path
    max_entries: int = 200

    #: One connection per thread, opened once: opening and closing one per request cost a WAL
    #: checkpoint with an fsync every time (~10 ms a request here).
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False, compare=False)

    def _connect(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=5.0)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")  # a debugging aid: no fsync per request
            connection.execute(SCHEMA)
            connection.row_factory = sqlite3.Row
            self._local.connection = connection
        return connection

    def record(
        self, *, route: str, client: str | None, body: Any, status_code: int, latency_ms: float, response: Any
    ) -> None:
        bbox = None
        if isinstance(body, dict):
            data = body.get("data") if isinstance(body.get("data"), dict) else {}
            raw_box = body.get("bbox", data.get("bbox"))
            bbox = json.dumps(raw_box) if raw_box is not None else None
        row = (
            time.time(),
            route,
            client,
            image_source(body),
            bbox,
            status_code,
            round(latency_ms, 2),
            json.dumps(redact_request(body)),
            json.dumps(shorten_response(response)),
        )
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO requests (time, route, client, image_source, bbox, status_code, latency_ms, "
                "request_json, response_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            connection.execute(
                "DELETE FROM requests WHERE id <= (SELECT MAX(id) FROM requests) - ?", (self.max_entries,)
            )

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        with self._connect() as connection:
            rows = connection.execute("SELECT * FROM requests ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        entries = []
        for row in rows:
            entry = dict(row)
            for key in ("request_json", "response_json", "bbox"):
                entry[key.removesuffix("_json")] = json.loads(entry.pop(key)) if entry[key] else None
            entries.append(entry)
        return entries

    def clear(self) -> None:
        with self._connect() as connection:
            connection.execute("DELETE FROM requests")
