"""The requests log (GET /requests) as table rows a person reads: newest first, secrets already redacted."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any


def format_bbox(bbox: Any) -> str:
    if not isinstance(bbox, Mapping):
        return "" if bbox is None else str(bbox)
    try:
        return ", ".join(f"{float(bbox[k]):g}" for k in ("x", "y", "w", "h"))
    except (KeyError, TypeError, ValueError):
        return str(dict(bbox))


def result_count(response: Any) -> int | None:
    if isinstance(response, Mapping) and isinstance(response.get("results"), list):
        return len(response["results"])
    return None


def request_rows(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per logged request: time, route, client, image source, bbox, status, latency, results."""
    rows = []
    for entry in entries:
        response = entry.get("response")
        error = response.get("error") if isinstance(response, Mapping) else None
        rows.append(
            {
                "id": entry.get("id"),
                "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.get("time") or 0)),
                "route": entry.get("route"),
                "client": entry.get("client"),
                "image": entry.get("image_source") or "",
                "bbox": format_bbox(entry.get("bbox")),
                "status": entry.get("status_code"),
                "latency_ms": entry.get("latency_ms"),
                "results": result_count(response),
                "error": error or "",
            }
        )
    return rows
