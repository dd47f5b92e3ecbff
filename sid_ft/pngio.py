"""8- and 16-bit PNG files that round-trip every bit, through OpenCV's libpng.

imageio's default (Pillow) plugin cannot write a 16-bit RGB PNG and reads one
back as 8-bit without a word, so sid_ft writes and reads its images here.

Why OpenCV (``opencv-python-headless``) and not pypng: measured on this
project's 2-core AMD EPYC machine on a 2848x4256x3 uint16 image (a Sony frame),

    ==============================  =========  ========
    library                         write      read
    ==============================  =========  ========
    opencv-python-headless 5.0      2.9 s      0.56 s
    pypng 0.20220715                4.6 s      2.2 s
    ==============================  =========  ========

and, more important for batch inference, OpenCV releases the GIL while it
compresses, so several writer threads run in parallel beside TensorFlow;
pypng packs rows in Python and holds the GIL.  Both round-trip all 16 bits.

Images are RGB in memory (OpenCV's BGR order stays inside this module).  Files
are encoded in memory and written through a temporary name plus a rename, so a
half-written PNG never carries the final name (``--skip-existing`` relies on it).
"""
from __future__ import annotations

import os

import numpy as np

from sid_ft import atomic
from sid_ft.errors import SidFtError

__all__ = ["to_uint", "write_png", "read_png", "PNG_COMPRESSION"]

PNG_COMPRESSION = 1
"""zlib level used for writing: 1 is the fastest; higher levels save ~1% on noisy 16-bit photos."""


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - a packaging problem, said plainly
        raise SidFtError(None, "16-bit PNG support needs OpenCV: pip install opencv-python-headless") from exc
    return cv2


def to_uint(image: np.ndarray, bits: int = 16) -> np.ndarray:
    """Quantise a float image in [0, 1] to ``uint16`` (bits=16) or ``uint8`` (bits=8), rounding to nearest.

    Values outside [0, 1] are clipped first.  Shape is kept.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    peak = 65535.0 if bits == 16 else 255.0
    dtype = np.uint16 if bits == 16 else np.uint8
    x = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    return np.rint(x * peak).astype(dtype)


def write_png(path: str | os.PathLike, image: np.ndarray, compression: int = PNG_COMPRESSION) -> None:
    """Write ``image`` to ``path`` as PNG, atomically.

    Args:
      path: destination; its folder must exist.
      image: ``(H, W, 3)`` RGB or ``(H, W)`` grey, dtype ``uint8`` or ``uint16``
        (use :func:`to_uint` for float images).
      compression: zlib level 0..9.

    Raises SidFtError when the image cannot be encoded or the file cannot be written.
    """
    cv2 = _cv2()
    arr = np.asarray(image)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png needs uint8 or uint16 data, got {arr.dtype}; see to_uint()")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]  # RGB -> BGR for OpenCV
    elif arr.ndim != 2:
        raise ValueError(f"write_png needs (H, W, 3) or (H, W) data, got shape {arr.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise SidFtError(path, "PNG encoding failed")
    try:
        atomic.write_bytes(path, buf.tobytes())
    except OSError as exc:
        raise SidFtError(path, f"cannot write PNG: {exc.strerror or exc}") from None


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG with its stored bit depth: ``(H, W, 3)`` RGB or ``(H, W)`` grey, ``uint8`` or ``uint16``.

    An alpha channel, if any, is dropped.  SidFtError for a missing or undecodable file.
    """
    cv2 = _cv2()
    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
    except OSError as exc:
        raise SidFtError(path, f"cannot read PNG: {exc.strerror or exc}") from None
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if arr is None:
        raise SidFtError(path, "not a readable PNG")
    if arr.ndim == 3:
        arr = arr[:, :, 2::-1] if arr.shape[2] >= 3 else arr[:, :, 0]
    return np.ascontiguousarray(arr)
