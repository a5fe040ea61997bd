"""Getting the picture: base64 or a URL, then decoded with size limits checked first.

Fetching `image.url` is a request this server makes on the caller's behalf, so it is fenced in:
only http/https; the address actually connected to (every hop, after redirects) must be public
unless allowed; one DNS answer is both checked and used (no second lookup a rebinding DNS server
could answer differently); one deadline covers DNS, connect, headers and body, enforced by a
watchdog that shuts the socket down (a server dripping bytes cannot stretch it); the byte limit
is enforced while streaming. Everything stays in memory (no shared temporary files): concurrent
requests cannot see each other's pictures.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import numpy as np
import requests
import requests.adapters
import urllib3.connection
import urllib3.exceptions
from PIL import Image, ImageOps, UnidentifiedImageError

from server.contract import ApiError

DOWNLOAD_CHUNK_BYTES = 64 * 1024
#: Longest wait for a TCP connection (within the whole-download deadline).
CONNECT_TIMEOUT_S = 5.0
#: Content types that say "this is a web page, not a picture" (a login or error page).
PAGE_CONTENT_TYPES = ("text/html", "application/xhtml+xml")
#: Formats OpenCV decodes straight into an RGB array, about 3x faster than Pillow for big photos
#: (12 MP JPEG: 36 ms against 120 ms here). Pillow reads the header and the EXIF orientation first.
FAST_DECODE_FORMATS = {"JPEG", "MPO"}
FAST_DECODE_MODES = {"RGB", "L"}
EXIF_ORIENTATION_TAG = 0x0112

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def decode_base64(text: str, max_bytes: int) -> bytes:
    """Bytes of `image.base64`; a `data:image/…;base64,` prefix and line breaks are tolerated."""
    if text.startswith("data:") or text[:1].isspace() or text[-1:].isspace():
        text = text.strip()
    if text.startswith("data:"):
        _, sep, text = text.partition(",")
        if not sep:
            raise ApiError(400, "image.base64 has a data: prefix but no comma before the data", "bad_base64")
    if len(text) * 3 // 4 > max_bytes:
        raise ApiError(413, f"the image is larger than the {max_bytes} byte limit", "too_large")
    try:
        try:  # V7's case, without copying a large string: standard alphabet, padded, no line breaks
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
        text = "".join(text.split())
        # Both alphabets: V7 sends the standard one; URL-safe base64 is a common client choice.
        alt = b"-_" if ("-" in text or "_" in text) else None
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=alt, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"image.base64 is not valid base64 ({exc})", "bad_base64") from None


# -- which addresses image.url may reach --------------------------------------------------------


def embedded_ipv4(address: IpAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64) and so may reach."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in found if a is not None]


def is_public_address(address: IpAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, shared, reserved or multicast."""
    return all(a.is_global and not a.is_multicast for a in (address, *embedded_ipv4(address)))


@dataclass(frozen=True)
class AddressPolicy:
    """Where image.url may connect: public addresses, plus `allowed_networks`, or anywhere."""

    allow_private: bool = False
    allowed_networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def of(cls, allow_private: bool, allowed_networks: Iterable[str | IpNetwork] = ()) -> AddressPolicy:
        return cls(allow_private, tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks))

    def permits(self, address: IpAddress) -> bool:
        if self.allow_private or any(address in network for network in self.allowed_networks):
            return True
        return is_public_address(address)

    def refusal(self, host: str, address: IpAddress) -> ApiError:
        return ApiError(
            400,
            f"image.url host {host!r} is at a non-public address ({address}); the server only fetches from "
            "public addresses (start it with --allow-private-urls, or --allow-url-network CIDR, for local use)",
            "private_url",
        )


def _parse_address(text: str) -> IpAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])


class _Deadline:
    """One deadline for a whole download. At expiry it shuts down every connection it watches,
    which ends any read or TLS handshake blocked on it, however slowly the peer drips bytes.

    It keeps a duplicate of each socket: shutdown acts on the connection behind every copy, and
    the duplicate stays valid after TLS wrapping detaches the original socket object.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.at = time.monotonic() + timeout_s
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        copy = sock.dup()
        with self._lock:
            self._sockets.append(copy)
            if self.expired:
                self._shut(copy)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def timeout_error(self, what: str = "answer") -> ApiError:
        return ApiError(504, f"image.url did not {what} within {self.timeout_s:g} s", "url_timeout")


def resolve(host: str, port: int, deadline: _Deadline) -> list[tuple[int, tuple]]:
    """(family, sockaddr) of every address of `host`, within the deadline (a resolver can hang)."""
    outcome: dict[str, object] = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=lookup, name="byom-resolve", daemon=True)
    worker.start()
    worker.join(max(deadline.remaining(), 0.0))
    if worker.is_alive():
        raise deadline.timeout_error("resolve")
    if "error" in outcome:
        raise ApiError(502, f"image.url host {host!r} could not be resolved ({outcome['error']})", "url_unreachable")
    return [(family, sockaddr) for family, _type, _proto, _name, sockaddr in outcome["infos"]]


class _GuardedConnectionMixin:
    """urllib3 connection that resolves once, checks every address, connects to that very address,
    and checks the peer of the connected socket again. TLS still verifies the certificate against
    the URL's host name and sends it as SNI (urllib3 uses `self.host` for both, not the address)."""

    def __init__(self, *args, byom_policy: AddressPolicy, byom_deadline: _Deadline, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.byom_policy = byom_policy
        self.byom_deadline = byom_deadline

    def _new_conn(self) -> socket.socket:
        host = self._dns_host.strip("[]")
        policy, deadline = self.byom_policy, self.byom_deadline
        addresses = resolve(host, self.port, deadline)
        for _family, sockaddr in addresses:
            address = _parse_address(sockaddr[0])
            if not policy.permits(address):
                raise policy.refusal(host, address)
        last_error: OSError = OSError(f"{host} has no address")
        for family, sockaddr in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if self.source_address:
                    sock.bind(self.source_address)
                limit = deadline.remaining()
                if isinstance(self.timeout, int | float):
                    limit = min(limit, self.timeout)
                sock.settimeout(max(limit, 0.001))
                deadline.watch(sock)
                sock.connect(sockaddr)
                peer = _parse_address(sock.getpeername()[0])
            except TimeoutError as exc:
                sock.close()
                raise urllib3.exceptions.ConnectTimeoutError(self, f"connecting to {host} timed out") from exc
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            if not policy.permits(peer):
                sock.close()
                raise policy.refusal(host, peer)
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        raise urllib3.exceptions.NewConnectionError(self, f"Failed to establish a new connection: {last_error}")


class _GuardedHTTPConnection(_GuardedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _GuardedAdapter(requests.adapters.HTTPAdapter):
    """Hands the address policy and the deadline to every connection it opens; no retries."""

    def __init__(self, policy: AddressPolicy, deadline: _Deadline) -> None:
        super().__init__(max_retries=0)
        self._policy, self._deadline = policy, deadline

    def get_connection_with_tls_context(self, *args, **kwargs):
        pool = super().get_connection_with_tls_context(*args, **kwargs)
        pool.ConnectionCls = _GuardedHTTPSConnection if pool.scheme == "https" else _GuardedHTTPConnection
        pool.conn_kw = {**pool.conn_kw, "byom_policy": self._policy, "byom_deadline": self._deadline}
        return pool


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ApiError(400, f"image.url must be http or https, got {parts.scheme or 'no'} scheme", "bad_url")
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise ApiError(400, "image.url has an invalid port", "bad_url") from None
    if not parts.hostname:
        raise ApiError(400, "image.url has no host", "bad_url")


def _read_body(response: requests.Response, max_bytes: int, deadline: _Deadline) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"image.url is {declared} bytes, over the {max_bytes} byte limit", "too_large")
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type in PAGE_CONTENT_TYPES:
        raise ApiError(
            400,
            f"image.url answered with a web page ({content_type}), not an image "
            "(an expired presigned URL, or a login or error page?)",
            "url_not_image",
        )
    chunks, size = [], 0
    for chunk in response.iter_content(DOWNLOAD_CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"image.url sent more than the {max_bytes} byte limit", "too_large")
        chunks.append(chunk)
        if deadline.remaining() <= 0:
            raise deadline.timeout_error("finish sending the picture")
    if deadline.expired:  # a body without Content-Length just ends when the watchdog shuts the socket
        raise deadline.timeout_error("finish sending the picture")
    return b"".join(chunks)


def fetch_url(
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    max_redirects: int,
    allow_private: bool,
    allowed_networks: Iterable[str | IpNetwork] = (),
) -> bytes:
    """Download `url` within one deadline and a byte limit, from permitted addresses only."""
    policy = AddressPolicy.of(allow_private, allowed_networks)
    deadline = _Deadline(timeout_s)
    try:
        with requests.Session() as session:
            session.trust_env = False  # no proxy from the environment: the peer must be the host itself
            session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            session.mount("http://", _GuardedAdapter(policy, deadline))
            session.mount("https://", _GuardedAdapter(policy, deadline))
            for _ in range(max_redirects + 1):
                _check_url(url)
                remaining = deadline.remaining()
                if remaining <= 0:
                    raise deadline.timeout_error()
                try:
                    response = session.get(
                        url,
                        stream=True,
                        allow_redirects=False,
                        timeout=(min(CONNECT_TIMEOUT_S, remaining), remaining),
                        headers={"Accept-Encoding": "identity", "Accept": "image/*"},
                    )
                    with response:
                        if response.is_redirect:
                            url = urljoin(url, response.headers["Location"])
                            continue
                        if response.status_code != 200:
                            raise ApiError(502, f"image.url answered HTTP {response.status_code}", "url_http_error")
                        return _read_body(response, max_bytes, deadline)
                except requests.RequestException as exc:
                    raise _download_error(exc, deadline) from None
    finally:
        deadline.close()
    raise ApiError(502, f"image.url redirected more than {max_redirects} times", "url_redirects")


def _download_error(exc: requests.RequestException, deadline: _Deadline) -> ApiError:
    if deadline.expired or isinstance(exc, requests.Timeout):
        return deadline.timeout_error()
    if isinstance(exc, requests.exceptions.SSLError):
        return ApiError(502, "image.url: the TLS handshake or certificate check failed", "url_unreachable")
    if isinstance(
        exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema | requests.exceptions.MissingSchema
    ):
        return ApiError(400, f"image.url is not a valid URL ({type(exc).__name__})", "bad_url")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return ApiError(502, "image.url download broke off before the end of the picture", "url_unreachable")
    return ApiError(502, f"image.url could not be fetched ({type(exc).__name__})", "url_unreachable")


# -- decoding ----------------------------------------------------------------------------------


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an H x W x C array, as Pillow's exif_transpose does."""
    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = array.transpose(1, 0, 2)
    elif orientation == 6:
        array = np.rot90(array, -1)
    elif orientation == 7:
        array = array[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:
        array = np.rot90(array, 1)
    return np.ascontiguousarray(array)


def _decode_fast(data: bytes, orientation: int) -> np.ndarray | None:
    """OpenCV's decoder straight to RGB (orientation applied here, from Pillow's EXIF reading)."""
    import cv2

    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if array is None:
        return None
    return _orient(array, orientation) if orientation in range(2, 9) else array


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
            # OpenCV fills a truncated JPEG with grey where Pillow refuses it: only whole files go fast.
            whole = data[-4096:].rstrip(b"\0").endswith(b"\xff\xd9")
            if image.format in FAST_DECODE_FORMATS and image.mode in FAST_DECODE_MODES and whole:
                orientation = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
                array = _decode_fast(data, orientation)
                if array is not None:
                    return array
            image = ImageOps.exif_transpose(image, in_place=False) if _oriented(image) else image
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApiError(
            413,
            f"the image is over the limit of {max_pixels} pixels and {max_side_px} px a side ({exc})",
            "too_many_pixels",
        ) from None
    except UnidentifiedImageError:
        raise ApiError(
            400,
            "the bytes sent are not an image this server can read (PNG, JPEG, WebP, BMP, TIFF, GIF)",
            "not_an_image",
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ApiError(400, f"the image could not be decoded: {exc}", "not_an_image") from None


def _oriented(image: Image.Image) -> bool:
    """Whether the EXIF orientation asks for a transpose (reading it decodes nothing for JPEG/WebP)."""
    return image.getexif().get(EXIF_ORIENTATION_TAG, 1) not in (1, None)
