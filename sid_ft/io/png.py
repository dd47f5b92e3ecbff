"""8- and 16-bit PNG files that round-trip every bit, through OpenCV's libpng.

imageio's default (Pillow) plugin cannot write a 16-bit RGB PNG and reads one
back as 8-bit without a word, so sid_ft writes and reads its images here.

Why OpenCV (``opencv-python-headless``) and not pypng: measured on this
project's 2-core AMD EPYC machine on a 2848x4256x3 uint16 image (a Sony frame), zlib level 1,

    ==============================  =========  ========
    library                         write      read
    ==============================  =========  ========
    opencv-python-headless 5.0      2.9 s      0.56 s
    pypng 0.20220715                4.6 s      2.2 s
    ==============================  =========  ========

and, more important for batch inference, OpenCV releases the GIL while it
compresses, so several writer threads run in parallel beside TensorFlow;
pypng packs rows in Python and holds the GIL.  Both round-trip all 16 bits.

How it compresses (:data:`PNG_FAST`, the default): Huffman coding only (no
LZ77 matching) after libpng's "Up" row filter.  In 16-bit images the low
bytes are close to noise and long matches are rare, so the matching zlib does
at level 1 costs most of the time and buys little.  CPU seconds and file size
for one Sony-frame output (2848x4256x3, 16-bit) on the same machine::

    content             zlib level 1, adaptive filters    Huffman only, Up filter
    smooth              1.35 s  33.7 MB                   0.71 s  35.4 MB
    noise sigma 0.003   2.30 s  57.2 MB                   0.85 s  55.6 MB
    noise sigma 0.01    2.73 s  62.4 MB                   0.78 s  62.0 MB
    (no compression:    0.88 s  72.8 MB)

Passing ``compression=0..9`` selects plain zlib levels with adaptive filters instead.

Images are RGB in memory (OpenCV's BGR order stays inside this module).  Files
are encoded in memory and written through a temporary name plus a rename, so a
half-written PNG never carries the final name (``--skip-existing`` relies on it).
"""
from __future__ import annotations

import os

import numpy as np

from sid_ft.io import atomic
from sid_ft.errors import SidFtError

__all__ = ["to_uint", "write_png", "read_png", "PNG_FAST"]

PNG_FAST = None
"""``write_png(compression=PNG_FAST)``, the default: Huffman-only coding after the Up filter (see the module notes)."""


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - a packaging problem, said plainly
        raise SidFtError(None, "16-bit PNG support needs OpenCV: pip install opencv-python-headless") from exc
    return cv2


def to_uint(image: np.ndarray, bits: int = 16, in_place: bool = False) -> np.ndarray:
    """Quantise a float image in [0, 1] to ``uint16`` (bits=16) or ``uint8`` (bits=8), rounding to nearest.

    Values outside [0, 1] are clipped first.  Shape is kept.  ``in_place=True`` lets a
    writable float32 ``image`` be used as scratch space (its values are destroyed): for a
    Sony-frame output that saves three 145 MB temporaries, whose page faults cost more
    than the arithmetic.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    peak = np.float32(65535.0 if bits == 16 else 255.0)
    dtype = np.uint16 if bits == 16 else np.uint8
    if in_place and isinstance(image, np.ndarray) and image.dtype == np.float32 and image.flags.writeable:
        x = image
        np.multiply(x, peak, out=x)
    else:
        x = np.multiply(np.asarray(image, dtype=np.float32), peak, dtype=np.float32)
    np.clip(x, 0.0, peak, out=x)
    np.rint(x, out=x)
    return x.astype(dtype)


def _encode_params(cv2, compression: int | None) -> list[int]:
    if compression is not None:
        if not 0 <= int(compression) <= 9:
            raise ValueError(f"PNG compression must be a zlib level 0..9 or None, got {compression!r}")
        return [cv2.IMWRITE_PNG_COMPRESSION, int(compression)]
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.12; older builds keep libpng's adaptive filters (slower)
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    return params


def write_png(path: str | os.PathLike, image: np.ndarray, compression: int | None = PNG_FAST,
              in_place: bool = False) -> None:
    """Write ``image`` to ``path`` as PNG, atomically.

    Args:
      path: destination; its folder must exist.
      image: ``(H, W, 3)`` RGB or ``(H, W)`` grey, dtype ``uint8`` or ``uint16``
        (use :func:`to_uint` for float images).
      compression: None (:data:`PNG_FAST`, the default) or a zlib level 0..9.
      in_place: an RGB ``image`` may be reordered to OpenCV's BGR in its own memory
        (the caller does not use it afterwards), instead of in a copy.

    Raises SidFtError when the image cannot be encoded or the file cannot be written.
    """
    cv2 = _cv2()
    arr = np.asarray(image)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png needs uint8 or uint16 data, got {arr.dtype}; see to_uint()")
    if arr.ndim == 3 and arr.shape[2] == 3:  # RGB -> BGR for OpenCV
        if in_place and arr.flags.writeable and arr.flags.c_contiguous:
            arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR, dst=arr)
        else:
            arr = arr[:, :, ::-1]
    elif arr.ndim != 2:
        raise ValueError(f"write_png needs (H, W, 3) or (H, W) data, got shape {arr.shape}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), _encode_params(cv2, compression))
    if not ok:
        raise SidFtError(path, "PNG encoding failed")
    try:
        atomic.write_bytes(path, buf)  # the encoded array itself: no copy of tens of MB
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
