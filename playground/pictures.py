"""Pictures as the playground handles them: decoded like the server decodes them, and shrunk for display.

The server applies EXIF orientation before running a model, so the picture is shown (and the box is
drawn) the same way: otherwise a phone photo's box would be sent in rotated pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

UPLOAD_TYPES = ("png", "jpg", "jpeg", "webp")


class PictureError(ValueError):
    """The bytes are not a picture the playground can show; the message says so plainly."""


@dataclass(frozen=True)
class Picture:
    name: str
    #: The file's bytes, sent to the endpoint as they are (V7 sends the original file).
    data: bytes
    image: Image.Image

    @property
    def resolution_wh(self) -> tuple[int, int]:
        return self.image.size


def load_picture(data: bytes, name: str) -> Picture:
    try:
        image = Image.open(io.BytesIO(data))
        image = ImageOps.exif_transpose(image).convert("RGB")
    except UnidentifiedImageError:
        raise PictureError(f"{name} is not a picture this playground can read (PNG, JPEG or WebP)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PictureError(f"{name} could not be decoded: {exc}") from None
    return Picture(name, data, image)


def resized(image: Image.Image, size_wh: tuple[int, int]) -> Image.Image:
    return image if image.size == tuple(size_wh) else image.resize(size_wh, Image.Resampling.LANCZOS)


def jpeg_bytes(image: Image.Image, quality: int = 88) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
