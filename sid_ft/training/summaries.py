"""What a run shows people as it trains: TensorBoard scalars and images, sample PNGs in ``TRAIN_DIR/samples``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sid_ft._tf import tf1
from sid_ft.data.sampling import Patch, PatchSampler
from sid_ft.training.graph import TrainGraph, feed_for

__all__ = ["sample_images", "tb_image", "tb_scalars"]


def _png_bytes(rgb: np.ndarray) -> bytes:
    """An 8-bit PNG of ``(H, W, 3)`` values in [0, 1] (NaN as 0), for a quick look."""
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", (np.clip(np.nan_to_num(rgb), 0, 1) * 255 + 0.5).astype(np.uint8), extension=".png")


def tb_scalars(writer, step: int, values: dict) -> None:
    """TensorBoard scalars ``{tag: value}`` at ``step``."""
    tf = tf1()
    writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()]), step)


def tb_image(writer, step: int, tag: str, rgb: np.ndarray) -> None:
    """A TensorBoard image of ``(H, W, 3)`` values in [0, 1] at ``step``."""
    tf = tf1()
    img = tf.Summary.Image(height=rgb.shape[0], width=rgb.shape[1], colorspace=3, encoded_image_string=_png_bytes(rgb))
    writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=tag, image=img)]), step)


def sample_images(sess, tg: TrainGraph, sampler: PatchSampler, scale: int, writer, train_dir: Path,
                  step: int) -> None:
    """Write the model's output and the ground truth on a fixed crop of the first pair (TensorBoard + PNG)."""
    p = sampler.patch_size
    arrays, gt = sampler.sources[0], sampler.gts[0]
    h, w = arrays[0].shape[:2]
    y, x = (h - p) // 2, (w - p) // 2
    patch = Patch(0, [np.asarray(a[y:y + p, x:x + p], np.float32) for a in arrays],
                  np.asarray(gt[scale * y:scale * (y + p), scale * x:scale * (x + p)], np.float32),
                  sampler.ratios[0], np.zeros(3, bool))
    out = sess.run(tg.output, feed_for(tg, patch, patch.ratio))[0]
    pair_image = np.concatenate([np.clip(out, 0, 1), patch.gt], axis=1)
    tb_image(writer, step, "sample/output_vs_ground_truth", pair_image)
    samples = train_dir / "samples"
    samples.mkdir(exist_ok=True)
    (samples / f"step_{step:07d}.png").write_bytes(_png_bytes(pair_image))
