#!/usr/bin/env python3
"""Inference speed and memory: end to end vs the bare network, GFLOP/s vs matmul, tiling.

Measured in one run, on one machine (these machines are noisy: compare side by side, medians):

* bare forward: median seconds of ``Predictor.forward`` on one packed, amplified image;
* end to end: ``run_inference`` over ``--images`` synthetic DNGs (decode, pack, network,
  16-bit PNG write in the pipeline) with the same, warmed-up network: seconds per image
  and the ratio to the bare forward (issue target: <= 1.10 on full Sony frames);
* the network's achieved GFLOP/s (FLOPs counted from the layer shapes: 2 * MACs of every
  convolution and transposed convolution) next to the machine's float32 matmul GFLOP/s
  (TensorFlow on the same device, and numpy);
* for the full image and each ``--tiles`` size, in a fresh subprocess each: peak resident
  memory (VmHWM), seconds, and PSNR of the tiled output against the full one.

Usage::

    python benchmarks/bench_infer.py                         # 1024x1536 mosaics, a few minutes on 2 cores
    python benchmarks/bench_infer.py --size 2848x4256 --images 8 --device gpu:0   # full Sony frames
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def sid_flops(h: int, w: int, in_channels: int = 4, out_channels: int = 12) -> float:
    """FLOPs (2 x multiply-adds) of one SID U-Net forward on an (h, w) packed input.

    Convolutions: 2 * k*k * C_in * C_out per output pixel; transposed 2x2 stride-2
    convolutions: 2 * C_in * C_out per output pixel (each output pixel gets one tap);
    activations, pooling, concat and depth_to_space are not counted (< 1%).
    """
    def down(n: int, times: int) -> int:
        for _ in range(times):
            n = -(-n // 2)
        return n

    sizes = [down(h, i) * down(w, i) for i in range(5)]  # pixels per level 1..5
    widths = [32, 64, 128, 256, 512]
    total = 0.0
    c = in_channels
    for lvl in range(5):
        total += 2 * 9 * c * widths[lvl] * sizes[lvl] + 2 * 9 * widths[lvl] * widths[lvl] * sizes[lvl]
        c = widths[lvl]
    for i, lvl in enumerate(range(3, -1, -1)):  # up6..up9 land on levels 4..1
        cin, cout = widths[lvl + 1], widths[lvl]
        total += 2 * cin * cout * sizes[lvl]  # transposed conv
        total += 2 * 9 * (2 * cout) * cout * sizes[lvl] + 2 * 9 * cout * cout * sizes[lvl]
    total += 2 * 32 * out_channels * sizes[0]  # g_conv10
    return total


def machine() -> str:
    from sid_ft.precision import cpu_name

    cpu = cpu_name()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "load average %.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {cores} cores usable, {platform.system()} {platform.release()}, {load}"


def matmul_gflops(device: str | None, n: int = 4096, repeat: int = 3) -> tuple[float, float]:
    """(TensorFlow, numpy) float32 n x n matmul GFLOP/s, medians."""
    from sid_ft._tf import tf1
    from sid_ft.predictor import _session_config

    tf = tf1()
    dev, config = _session_config(tf, device)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    with tf.Graph().as_default():
        with tf.device(dev):
            va, vb = tf.Variable(a), tf.Variable(a.T.copy())
            y = tf.reduce_sum(tf.matmul(va, vb))
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(y)
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                sess.run(y)
                times.append(time.perf_counter() - t)
    tf_rate = 2 * n**3 / statistics.median(times) / 1e9
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t)
    return tf_rate, 2 * n**3 / statistics.median(times) / 1e9


def make_inputs(folder: Path, n: int, h: int, w: int) -> list[Path]:
    from sid_ft.dng import write_dng

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / 37.0
    paths = []
    for i in range(n):
        signal = 0.01 * (0.6 + 0.4 * np.sin(xx + i) * np.cos(0.7 * yy))
        dn = 512 + 15871 * signal + rng.normal(0, 3, (h, w)).astype(np.float32)
        path = folder / f"bench_{i:03d}_00_0.1s.dng"
        write_dng(path, np.clip(dn, 0, 16383).astype(np.uint16), cfa="RGGB", black_level=512, white_level=16383,
                  exposure_time=0.1)
        paths.append(path)
    return paths


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: VmHWM (reset by exec, unlike ru_maxrss on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(args: argparse.Namespace) -> None:
    """Subprocess: one full or tiled prediction; prints JSON with peak memory and timing."""
    from sid_ft import infer, metrics

    x = np.load(args.child_input)
    tile = None if args.child_tile == 0 else args.child_tile
    with infer.Predictor(args.checkpoint, device=args.device, tile=tile, overlap=args.overlap) as p:
        p.forward(x[None, :16, :16])  # graph warm-up, weights in memory
        base = peak_rss_mb()
        t = time.perf_counter()
        y = p.predict(x)
        seconds = time.perf_counter() - t
        peak = peak_rss_mb()
    result = {"tile": tile, "seconds": seconds, "peak_mb": peak, "base_mb": base}
    if tile is None:
        np.save(args.child_output, y)
    else:
        result["psnr_vs_full"] = metrics.psnr(y, np.load(args.child_output))
    if args.device and args.device.startswith("gpu"):
        try:
            import tensorflow as tf2

            result["gpu_peak_mb"] = tf2.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        except Exception:  # noqa: BLE001 - optional figure
            pass
    print("RESULT " + json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="1024x1536", help="mosaic HxW (full Sony: 2848x4256) (default: %(default)s)")
    p.add_argument("--images", type=int, default=4, help="files in the end-to-end batch (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=3, help="bare forward repetitions (default: %(default)s)")
    p.add_argument("--tiles", default="256,512", help="tile sizes (packed pixels) to measure; '' for none")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap (default: sid_ft.predictor.DEFAULT_OVERLAP)")
    p.add_argument("--device", default=None, help="cpu, gpu:0 ... (default: TensorFlow's choice)")
    p.add_argument("--checkpoint", help="checkpoint to time (default: released layout, random weights)")
    p.add_argument("--child-tile", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-input", help=argparse.SUPPRESS)
    p.add_argument("--child-output", help=argparse.SUPPRESS)
    args = p.parse_args()
    from sid_ft import infer, raw as sid_raw

    if args.overlap is None:
        args.overlap = infer.DEFAULT_OVERLAP
    if args.child_tile is not None:
        child(args)
        return
    h, w = (int(v) for v in args.size.lower().split("x"))
    import tensorflow as tf2

    print(f"machine: {machine()}; TensorFlow {tf2.__version__}; device {args.device or 'default'}")
    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        tmp = Path(tmp)
        if args.checkpoint is None:
            from sid_reference import write_released_checkpoint

            args.checkpoint = write_released_checkpoint(tmp / "ckpt", seed=0)
        t = time.perf_counter()
        (tmp / "in").mkdir()
        files = make_inputs(tmp / "in", args.images, h, w)
        print(f"made {len(files)} DNGs of {h}x{w} in {time.perf_counter() - t:.1f} s")

        tf_gflops, np_gflops = matmul_gflops(args.device)
        predictor = infer.Predictor(args.checkpoint, device=args.device)
        x = infer.amplify(sid_raw.load_raw(files[0]).packed, 100.0)
        predictor.forward(x[None])  # warm-up
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            predictor.forward(x[None])
            times.append(time.perf_counter() - t)
        flops = sid_flops(*x.shape[:2])

        opts = infer.InferOptions(checkpoint=args.checkpoint, inputs=[str(f) for f in files],
                                  out_dir=str(tmp / "out"), ratio=100.0, progress=False, device=args.device)
        summary = infer.run_inference(opts, predictor=predictor)
        per_image = summary.wall_s / len(files)
        stages = {k: statistics.median(getattr(r, k) for r in summary.records)
                  for k in ("decode_s", "network_s", "write_s")}
        for _ in range(max(1, args.repeat // 2)):  # the bare forward again, after the batches: drift shows up here
            t = time.perf_counter()
            predictor_output = predictor.forward(x[None])[0]
            times.append(time.perf_counter() - t)
        predictor_in, predictor_scale = predictor.in_channels, predictor.scale
        predictor.close()
        bare = statistics.median(times)
        (tmp / "alone").mkdir()

        print(f"\nimage: mosaic {h}x{w}, packed {x.shape[0]}x{x.shape[1]}, network {flops / 1e9:.1f} GFLOP per image")
        print(f"bare forward (median of {len(times)}, before and after the batches):  {bare:8.3f} s/image  -> "
              f"{flops / bare / 1e9:7.1f} GFLOP/s  (each: {', '.join('%.2f' % t for t in times)})")
        print(f"end to end ({len(files)} files):  {per_image:8.3f} s/image ({1 / per_image:.3f} images/s), "
              f"ratio to bare forward {per_image / bare:.3f} (target <= 1.10)")
        print("  per-file stage medians (overlapped in the pipeline): "
              + ", ".join(f"{k[:-2]} {v:.3f} s" for k, v in stages.items()))
        # the CPU work besides the network, measured alone: with C cores busy with the network, the
        # pipeline cannot beat 1 + (this / (C x bare)) unless the network leaves cores idle (a GPU does)
        rgb = predictor_output
        t = time.process_time()
        job = infer.Job(input=files[0])
        decoded = infer._decode(job, opts, predictor_in, predictor_scale)
        decode_cpu = time.process_time() - t
        t = time.process_time()
        infer._write(decoded, rgb, infer.output_paths(job, tmp / "alone"), 16, False,
                     infer.FileRecord(input=str(files[0]), status="running"))
        write_cpu = time.process_time() - t
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"  CPU-seconds per image besides the network, alone: decode+pack {decode_cpu:.2f}, 16-bit PNG "
              f"{write_cpu:.2f}; if the network keeps all {cores} cores busy the ratio is at least "
              f"{1 + (decode_cpu + write_cpu) / (cores * bare):.3f}")
        print(f"matmul 4096^2 float32: TensorFlow {tf_gflops:7.1f} GFLOP/s, numpy {np_gflops:7.1f} GFLOP/s; "
              f"network reaches {100 * flops / bare / 1e9 / tf_gflops:.0f}% of TF matmul")

        np.save(tmp / "x.npy", x)
        tiles = [0] + [int(v) for v in args.tiles.split(",") if v.strip()]
        print(f"\ntiling (overlap {args.overlap} packed px; each in a fresh process; peak RSS = VmHWM, 'network' = "
              "peak minus the RSS after loading TF, the weights and a 16x16 warm-up):")
        print(f"{'tile':>8} {'seconds':>8} {'peak MB':>8} {'network MB':>11} {'PSNR vs full':>13}")
        for tile in tiles:
            cmd = [sys.executable, __file__, "--checkpoint", args.checkpoint, "--overlap", str(args.overlap),
                   "--child-tile", str(tile), "--child-input", str(tmp / "x.npy"),
                   "--child-output", str(tmp / "full.npy")]
            if args.device:
                cmd += ["--device", args.device]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                print(f"{tile or 'full':>8} failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(lines[-1][7:])
            ps = r.get("psnr_vs_full")
            extra = f"  GPU peak {r['gpu_peak_mb']:.0f} MB" if "gpu_peak_mb" in r else ""
            print(f"{tile or 'full':>8} {r['seconds']:8.2f} {r['peak_mb']:8.0f} {r['peak_mb'] - r['base_mb']:11.0f} "
                  f"{('%.2f dB' % ps) if ps is not None else '-':>13}{extra}")


if __name__ == "__main__":
    main()
