"""Built-in sample pictures (shipped by scikit-image and matplotlib: no network needed)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

#: Sample name -> what it shows (what a model should find there).
SAMPLES: dict[str, str] = {
    "astronaut": "one person, head and shoulders (scikit-image)",
    "camera": "a person with a camera, greyscale (scikit-image)",
    "grace_hopper": "a portrait (matplotlib)",
    "coffee": "a cup of coffee: no person (scikit-image)",
    "chelsea": "a cat: no person (scikit-image)",
}


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "camera": _skimage("camera"),
    "coffee": _skimage("coffee"),
    "chelsea": _skimage("chelsea"),
    "grace_hopper": _grace_hopper,
}


def sample_rgb(name: str) -> np.ndarray:
    """The sample as a C-contiguous RGB uint8 array (greyscale pictures are expanded)."""
    if name not in _LOADERS:
        raise KeyError(f"unknown sample {name!r}; samples: {', '.join(SAMPLES)}")
    image = np.asarray(_LOADERS[name]())
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)


def encode_png(image_rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image_rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_jpeg(image_rgb: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image_rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def sample_bytes(name: str, image_format: str = "png") -> bytes:
    image = sample_rgb(name)
    return encode_png(image) if image_format == "png" else encode_jpeg(image)
