"""Finding model files (BYOM_MODEL_DIR first, then the user cache) and downloading them into the cache.

Where files are looked up, in this order:

1. ``BYOM_MODEL_DIR`` (optional): a folder the user (or CI) filled by hand. It is only ever read,
   never written, and may be read-only.
2. The user cache: ``BYOM_CACHE_DIR``, else ``$XDG_CACHE_HOME/byom-playground/models``, else
   ``~/.cache/byom-playground/models``. Downloads land here.

A file found in either folder is used as it is, with no checksum check: the user's own file wins
(for instance a re-built or fine-tuned bundle under the official name). Only downloads are checked,
against `ModelFile.sha256` / `ModelFile.size_bytes` when those are set.

``BYOM_MODEL_BASE_URL`` (optional) replaces the official download location, for mirrors and tests:
when it is set, a file is fetched from ``BYOM_MODEL_BASE_URL.rstrip("/") + "/" + model_file.name``
instead of ``model_file.url``. Checksums are still verified against the official pins.

`requests` is imported only when a download starts, so importing this module stays cheap.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from models.base import ModelFile

#: progress(done_bytes, total_bytes): total is None when the server does not say the size.
ProgressCallback = Callable[[int, int | None], None]

_CHUNK_BYTES = 256 * 1024
#: Temporary download files older than this (left by killed processes) are removed on the next download.
_STALE_TEMP_SECONDS = 24 * 3600


def default_cache_dir() -> Path:
    env = os.environ.get("BYOM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "byom-playground" / "models"


class ModelUnavailable(RuntimeError):
    """A model cannot run because files are missing; the message says what to fetch from where."""

    def __init__(self, model_name: str, missing: list[str]) -> None:
        self.model_name = model_name
        self.missing = missing
        super().__init__(f"model {model_name!r} is unavailable: " + "; ".join(missing))


class ModelDownloadError(RuntimeError):
    """A model file could not be downloaded (or failed its check); nothing was left under its name.

    `file_name`, `url` and `reason` are also available as attributes.
    """

    def __init__(self, file_name: str, url: str, reason: str) -> None:
        self.file_name = file_name
        self.url = url
        self.reason = reason
        super().__init__(f"could not download {file_name} from {url}: {reason}")


@dataclass(frozen=True)
class ModelFileLocator:
    """Where model files are looked up (read-only `model_dir`) and cached (`cache_dir`).

    `base_url`, when set, replaces the official download location: a file is fetched from
    ``base_url.rstrip("/") + "/" + model_file.name`` (see `from_env`: ``BYOM_MODEL_BASE_URL``).
    """

    model_dir: Path | None
    cache_dir: Path
    base_url: str | None = None

    @classmethod
    def from_env(cls) -> ModelFileLocator:
        """`BYOM_MODEL_DIR`, the cache (`BYOM_CACHE_DIR` / XDG default) and `BYOM_MODEL_BASE_URL`."""
        model_dir = os.environ.get("BYOM_MODEL_DIR")
        base_url = os.environ.get("BYOM_MODEL_BASE_URL") or None
        return cls(Path(model_dir).expanduser() if model_dir else None, default_cache_dir(), base_url)

    def candidates(self, model_file: ModelFile) -> list[Path]:
        dirs = [d for d in (self.model_dir, self.cache_dir) if d is not None]
        return [d / model_file.name for d in dirs]

    def find(self, model_file: ModelFile) -> Path | None:
        """The first existing candidate, used as it is (no checksum check), or None."""
        return next((p for p in self.candidates(model_file) if p.is_file()), None)

    def download_url(self, model_file: ModelFile) -> str:
        """The URL a download fetches: the official one, or the same name under `base_url`."""
        if self.base_url:
            return self.base_url.rstrip("/") + "/" + model_file.name
        return model_file.url

    def describe_missing(self, model_file: ModelFile) -> str:
        where = " or ".join(str(p.parent) for p in self.candidates(model_file))
        return (
            f"file {model_file.name} not found in {where}; download it from {self.download_url(model_file)} "
            f"(or run: python run.py models pull)"
        )

    def ensure(self, model_file: ModelFile, *, download: bool = True, progress: ProgressCallback | None = None) -> Path:
        """The file's path: found in `model_dir` or the cache as it is, else downloaded into the cache.

        With ``download=False`` a missing file raises FileNotFoundError (message from `describe_missing`).
        Raises ModelDownloadError when the download fails.
        """
        found = self.find(model_file)
        if found is not None:
            return found
        if not download:
            raise FileNotFoundError(self.describe_missing(model_file))
        return self.download(model_file, progress=progress)

    def download(
        self, model_file: ModelFile, *, progress: ProgressCallback | None = None, timeout_s: float = 30.0
    ) -> Path:
        """Download `model_file` into `cache_dir` (never into `model_dir`) and return its final path.

        The body is streamed into a unique temporary file in `cache_dir` while its SHA-256 is computed;
        it is checked against `model_file.sha256` and `model_file.size_bytes` when those are set (and
        against the server's Content-Length), then moved onto the final name with `os.replace`, which is
        atomic: readers see either no file or the whole file, and two processes downloading the same
        file at once each write their own temporary file and the last complete one wins.

        `timeout_s` bounds connecting and each wait for data (not the whole transfer). `progress`, when
        given, is called as progress(done_bytes, total_bytes) after each chunk (total None if unknown).
        An existing file under the final name is replaced. On any failure the temporary file is removed
        and ModelDownloadError is raised naming the file, the URL and the reason.
        """
        url = self.download_url(model_file)
        final = self.cache_dir / model_file.name

        def fail(reason: str) -> ModelDownloadError:
            return ModelDownloadError(model_file.name, url, reason)

        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fail(f"cannot create the cache folder {self.cache_dir}: {exc.strerror or exc}") from exc
        _remove_stale_temp_files(self.cache_dir, model_file.name)

        try:
            tmp = tempfile.NamedTemporaryFile(
                dir=self.cache_dir, prefix=f".{model_file.name}.", suffix=".part", delete=False
            )
        except OSError as exc:
            raise fail(f"cannot write into the cache folder {self.cache_dir}: {exc.strerror or exc}") from exc
        tmp_path = Path(tmp.name)
        try:
            with tmp:
                digest, done = _stream_into(url, tmp, timeout_s, progress, fail)
                tmp.flush()
                os.fsync(tmp.fileno())
            size_ok = model_file.size_bytes is None or done == model_file.size_bytes
            size_note = f"{model_file.size_bytes} bytes expected, {done} received"
            if model_file.sha256 is not None and digest != model_file.sha256.lower():
                expected = model_file.sha256.lower()
                extra = "" if size_ok else f" ({size_note})"
                raise fail(f"checksum mismatch: expected SHA-256 {expected}, got {digest}{extra}")
            if not size_ok:
                raise fail(f"size mismatch: {size_note}")
            os.chmod(tmp_path, 0o644)  # NamedTemporaryFile creates 0600
            os.replace(tmp_path, final)
        except BaseException as exc:
            tmp_path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise fail(f"cannot write into {self.cache_dir}: {exc.strerror or exc}") from exc
            raise
        return final


def _stream_into(url: str, out, timeout_s: float, progress: ProgressCallback | None, fail):
    """GET `url` into the open file `out`; returns (sha256 hex, byte count). Raises fail(...) on errors."""
    import requests

    digest = hashlib.sha256()
    done = 0
    try:
        # identity: the bytes on the wire are the file's bytes, so Content-Length counts them.
        with requests.get(url, stream=True, timeout=timeout_s, headers={"Accept-Encoding": "identity"}) as response:
            if response.status_code != 200:
                raise fail(f"HTTP {response.status_code} {response.reason or ''}".rstrip())
            total = _content_length(response)
            if progress is not None:
                progress(0, total)
            for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
                if not chunk:
                    continue
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except requests.exceptions.RequestException as exc:
        raise fail(_describe_request_error(exc, timeout_s, done)) from exc
    if total is not None and done != total:
        raise fail(f"connection closed early: received {done} of {total} bytes")
    return digest.hexdigest(), done


def _content_length(response) -> int | None:
    try:
        value = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _describe_request_error(exc: BaseException, timeout_s: float, done: int) -> str:
    """A short reason ("connection refused", "timed out after 30 s", ...) instead of urllib3's nesting."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"timed out after {timeout_s:g} s while connecting"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"timed out after {timeout_s:g} s waiting for data ({done} bytes received)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"connection closed before the end of the file: {_innermost_message(exc)}"
    os_error = _find_os_error(exc)
    if os_error is not None:
        if os_error.errno == errno.ECONNREFUSED:
            return "connection refused (is the server running and the URL right?)"
        return f"connection failed: {os_error.strerror}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"connection failed: {_innermost_message(exc)}"
    return f"{type(exc).__name__}: {_innermost_message(exc)}"


def _causes(exc: BaseException):
    """`exc` and every exception nested in it (args, urllib3's .reason, __cause__, __context__)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [a for a in current.args if isinstance(a, BaseException)]
        nested += [x for x in (getattr(current, "reason", None), current.__cause__, current.__context__) if x]
        stack.extend(x for x in nested if isinstance(x, BaseException))


def _find_os_error(exc: BaseException) -> OSError | None:
    return next((e for e in _causes(exc) if isinstance(e, OSError) and e.errno and e.strerror), None)


def _innermost_message(exc: BaseException) -> str:
    deepest = list(_causes(exc))[-1]
    return str(deepest) or type(deepest).__name__


def _remove_stale_temp_files(cache_dir: Path, file_name: str) -> None:
    """Remove temporary files of `file_name` left by killed downloads (not ones that may still be running)."""
    cutoff = time.time() - _STALE_TEMP_SECONDS
    for path in cache_dir.glob(f".{file_name}.*.part"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


class TerminalProgress:
    """A `progress` callback that reports a download on a terminal (stderr by default).

    On a TTY it redraws one line (percentage, MB done / total, rate) at most every 0.1 s; otherwise
    (logs, CI) it prints a plain line at each 10 % step, or every 10 MB when the size is unknown.
    Call `finish()` when the download ends (successfully or not) to end the line; it is also called
    automatically when done reaches total.
    """

    def __init__(self, label: str, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = tty if tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._last_step = -1
        self._done = 0
        self._total: int | None = None
        self._drawn = False
        self._finished = False

    def __call__(self, done: int, total: int | None) -> None:
        if self._finished:
            return
        self._done, self._total = done, total
        complete = total is not None and done >= total
        if self.tty:
            now = time.monotonic()
            if complete or now - self._last_draw >= 0.1:
                self._last_draw = now
                self.stream.write("\r" + self._line() + "\033[K")
                self.stream.flush()
                self._drawn = True
        else:
            step = (done * 10 // total) if total else done // 10_000_000
            if step > self._last_step:
                self._last_step = step
                self.stream.write(self._line() + "\n")
                self.stream.flush()
        if complete:
            self.finish()

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-6)
        mb = self._done / 1e6
        rate = f"{mb / elapsed:.1f} MB/s"
        if self._total:
            percent = 100 * self._done / self._total
            return f"{self.label}: {percent:3.0f}% {mb:.1f}/{self._total / 1e6:.1f} MB {rate}"
        return f"{self.label}: {mb:.1f} MB {rate}"
