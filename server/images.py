"""Getting the picture: base64 or a URL, then decoded with size limits checked first.

Everything stays in memory (no shared temporary files): concurrent requests cannot see
each other's pictures.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import socket
import time
import warnings
from urllib.parse import urljoin, urlsplit

import numpy as np
import requests
from PIL import Image, ImageOps, UnidentifiedImageError

from server.contract import ApiError

DOWNLOAD_CHUNK_BYTES = 64 * 1024


def decode_base64(text: str, max_bytes: int) -> bytes:
    """Bytes of `image.base64`; a `data:image/…;base64,` prefix and line breaks are tolerated."""
    text = text.strip()
    if text.startswith("data:"):
        _, sep, text = text.partition(",")
        if not sep:
            raise ApiError(400, "image.base64 has a data: prefix but no comma before the data", "bad_base64")
    text = "".join(text.split())
    if len(text) * 3 // 4 > max_bytes:
        raise ApiError(413, f"the image is larger than the {max_bytes} byte limit", "too_large")
    try:
        # Both alphabets: V7 sends the standard one; URL-safe base64 is a common client choice.
        alt = b"-_" if ("-" in text or "_" in text) else None
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=alt, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"image.base64 is not valid base64 ({exc})", "bad_base64") from None


def _check_host(url: str, allow_private: bool) -> None:
    """Refuse URLs whose host resolves to loopback/private/link-local/reserved addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ApiError(400, f"image.url must be http or https, got {parts.scheme or 'no'} scheme", "bad_url")
    if not parts.hostname:
        raise ApiError(400, "image.url has no host", "bad_url")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError) as exc:
        raise ApiError(502, f"image.url host {parts.hostname!r} could not be resolved ({exc})", "url_unreachable")
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            raise ApiError(
                400,
                f"image.url host {parts.hostname!r} resolves to a non-public address ({address}); "
                "start the server with --allow-private-urls to fetch from local addresses",
                "private_url",
            )


def fetch_url(url: str, *, max_bytes: int, timeout_s: float, max_redirects: int, allow_private: bool) -> bytes:
    """Download `url` within a whole-request deadline and a byte limit enforced while streaming."""
    deadline = time.monotonic() + timeout_s
    with requests.Session() as session:
        for _ in range(max_redirects + 1):
            _check_host(url, allow_private)
            remaining = deadline - time.monotonic()
            try:
                response = session.get(
                    url, stream=True, allow_redirects=False, timeout=(min(5.0, remaining), remaining)
                )
            except requests.Timeout:
                raise ApiError(504, f"image.url did not answer within {timeout_s:g} s", "url_timeout") from None
            except requests.RequestException as exc:
                raise ApiError(
                    502, f"image.url could not be fetched: {type(exc).__name__}", "url_unreachable"
                ) from None
            with response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("Location", ""))
                    continue
                if response.status_code != 200:
                    raise ApiError(502, f"image.url answered HTTP {response.status_code}", "url_http_error")
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise ApiError(413, f"image.url is {declared} bytes, over the {max_bytes} byte limit", "too_large")
                buffer = io.BytesIO()
                try:
                    for chunk in response.iter_content(DOWNLOAD_CHUNK_BYTES):
                        buffer.write(chunk)
                        if buffer.tell() > max_bytes:
                            raise ApiError(413, f"image.url sent more than the {max_bytes} byte limit", "too_large")
                        if time.monotonic() > deadline:
                            raise ApiError(
                                504, f"image.url took longer than {timeout_s:g} s to download", "url_timeout"
                            )
                except requests.RequestException as exc:
                    raise ApiError(
                        502, f"image.url download broke off: {type(exc).__name__}", "url_unreachable"
                    ) from None
                return buffer.getvalue()
    raise ApiError(502, f"image.url redirected more than {max_redirects} times", "url_redirects")


def decode_image(data: bytes, *, max_pixels: int, max_side_px: int) -> np.ndarray:
    """RGB uint8 array of an encoded picture, EXIF orientation applied (as browsers show it).

    The size is read from the header before any pixel is decoded, so a small file that would
    expand into a huge bitmap (a decompression bomb) is refused cheaply.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels or max(width, height) > max_side_px:
                raise ApiError(
                    413,
                    f"the image is {width}x{height} ({width * height} pixels), over the limit of "
                    f"{max_pixels} pixels and {max_side_px} px a side",
                    "too_many_pixels",
                )
            image = ImageOps.exif_transpose(image)
            rgb = image.convert("RGB")
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApiError(413, f"the image has too many pixels: {exc}", "too_many_pixels") from None
    except UnidentifiedImageError:
        raise ApiError(
            400,
            "the bytes sent are not an image this server can read (PNG, JPEG, WebP, BMP, TIFF, GIF)",
            "not_an_image",
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ApiError(400, f"the image could not be decoded: {exc}", "not_an_image") from None
    return np.asarray(rgb)
