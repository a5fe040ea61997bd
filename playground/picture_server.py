"""A short-lived local web server that hands out a picture under a presigned-style URL.

V7 sends `image.url`: a presigned, short-lived URL whose query string is the credential. To try that
path without cloud storage, the playground serves the picture itself under
`/pictures/TOKEN/NAME?X-Amz-Expires=...&X-Amz-Signature=...` and answers 403 unless the signature is
sent back unchanged, as S3 would: an endpoint that drops or re-encodes the query fails here too.
The endpoint must be able to reach this machine (a local API needs --allow-private-urls).
"""

from __future__ import annotations

import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

CONTENT_TYPES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"RIFF": "image/webp"}


def sniff_content_type(data: bytes) -> str:
    return next((t for magic, t in CONTENT_TYPES.items() if data.startswith(magic)), "application/octet-stream")


class PictureServer:
    """Serves registered pictures on 127.0.0.1 (or `host`) on a free port until closed."""

    def __init__(self, host: str = "127.0.0.1", expires_s: int = 300) -> None:
        self._pictures: dict[str, tuple[bytes, str, str]] = {}
        self.hits: list[str] = []
        self.expires_s = expires_s
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                outer.hits.append(self.path)
                parts = urlsplit(self.path)
                entry = outer._pictures.get(parts.path)
                if entry is None:
                    self.send_error(404)
                    return
                data, content_type, signature = entry
                if parse_qs(parts.query).get("X-Amz-Signature") != [signature]:
                    self.send_error(403, "signature missing or changed: use the presigned URL as given")
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=lambda: self._httpd.serve_forever(poll_interval=0.05), name="picture-server", daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, data: bytes, file_name: str = "picture") -> str:
        """Serve `data` and return its presigned-style URL."""
        path = f"/pictures/{secrets.token_hex(8)}/{quote(file_name)}"
        signature = secrets.token_hex(32)
        self._pictures[path] = (data, sniff_content_type(data), signature)
        query = f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={self.expires_s}&X-Amz-Signature={signature}"
        return f"{self.base_url}{path}?{query}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> PictureServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
