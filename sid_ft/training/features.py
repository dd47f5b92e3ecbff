"""The feature cache of the ``cached`` training mode: the frozen network's output, once per training image.

The frozen SID network runs on each amplified short exposure at full size; its
``g_conv9_2`` features (``(h, w, 32)``) and ``g_conv10`` logits (``(h, w, 3 s^2)``), h, w
the packed size, go to ``.npy`` files in the cache folder, named by the short exposure, a
fingerprint of the frozen weights (:func:`base_fingerprint`), the ratio and the dtype.  Every
step then trains the g_add head on crops of them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from sid_ft._tf import tf1
from sid_ft.data.sampling import CachedPair, load_npy, save_npy_atomic
from sid_ft.nets.model_spec import classify_tensor
from sid_ft.runtime import preempt

__all__ = ["base_fingerprint", "cached_features"]


def base_fingerprint(sess, tg) -> str:
    """A hash of the frozen network's weights in ``tg`` (a :class:`sid_ft.training.graph.TrainGraph`):
    cached features are valid only for these."""
    tf = tf1()
    with tg.graph.as_default():
        base_vars = [v for v in tf.global_variables() if classify_tensor(v.op.name) == "base"]
    h = hashlib.sha1()
    for v, value in zip(base_vars, sess.run(base_vars)):
        h.update(v.op.name.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()[:16]


def cached_features(
    sess, tg, pairs: Sequence[CachedPair], cache_dir: Path, fingerprint: str, dtype: str = "float16",
    progress: bool = True,
) -> list[list[np.ndarray]]:
    """Run the frozen network once per training image (amplified, full size) and cache ``g_conv9_2``/``g_conv10``.

    Returns ``[features, logits]`` per pair, read back from the cache (``dtype``).
    """
    from tqdm import tqdm

    out: list[list[np.ndarray]] = []
    for cp in tqdm(pairs, desc="frozen network (feature cache)", unit="image", disable=not progress, leave=False):
        stem = f"{cp.short_key}_{fingerprint}_r{cp.ratio:g}_{dtype}"
        paths = [cache_dir / f"{stem}_feat.npy", cache_dir / f"{stem}_logits.npy"]
        preempt.check()  # SIGTERM/SIGUSR1 while caching: stop between images
        if not all(p.exists() for p in paths):
            image = np.minimum(np.asarray(cp.short, np.float32) * cp.ratio, 1.0)[None]
            feats, logits = sess.run(tg.base_features, {tg.inputs["image"]: image})
            save_npy_atomic(paths[0], feats[0].astype(dtype))
            save_npy_atomic(paths[1], logits[0].astype(dtype))
        out.append([load_npy(p) for p in paths])
    return out
