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
  memory (VmHWM), seconds, and PSNR of the tiled output against the full one;
* with ``--precision fp32,bf16`` (or fp16, auto) all of it per precision, run interleaved, and
  each 16-bit output's PSNR and largest difference (in 16-bit steps) against float32's.

Usage::

    python benchmarks/bench_infer.py                         # 1024x1536 mosaics, a few minutes on 2 cores
    python benchmarks/bench_infer.py --size 2848x4256 --images 8 --device gpu:0   # full Sony frames
    python benchmarks/bench_infer.py --size 2848x4256 --images 2 --repeat 2 --tiles 512,1024 --precision fp32,bf16
"""
from __future__ import annotations

import argparse
import dataclasses
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
    from sid_ft.nets.precision import cpu_name

    cpu = cpu_name()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = "load average %.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {cores} cores usable, {platform.system()} {platform.release()}, {load}"


def matmul_gflops(device: str | None, n: int = 4096, repeat: int = 3) -> tuple[float, float]:
    """(TensorFlow, numpy) float32 n x n matmul GFLOP/s, medians."""
    from sid_ft._tf import tf1
    from sid_ft.inference.predictor import _session_config

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
    from sid_ft.io.dng import write_dng

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
    from sid_ft.inference.predictor import Predictor
    from sid_ft.eval import metrics

    x = np.load(args.child_input)
    tile = None if args.child_tile == 0 else args.child_tile
    with Predictor(args.checkpoint, device=args.device, tile=tile, overlap=args.overlap,
                         precision=args.precision) as p:
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
    if args.child_reference and Path(args.child_reference).exists():
        reference = np.load(args.child_reference)
        result["psnr_vs_fp32"] = metrics.psnr(y, reference)
        result["max_lsb16_vs_fp32"] = float(np.abs(y - reference).max() * 65535)
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
    p.add_argument("--tiles", default="256,512",
                   help="tile sizes (packed pixels) to measure besides the full image; '' for none; 'none' skips "
                        "the tiling section, full image included (default: %(default)s)")
    p.add_argument("--matmul-size", type=int, default=4096, help="n of the n x n float32 matmul (default: %(default)s)")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap (default: sid_ft.inference.predictor.DEFAULT_OVERLAP)")
    p.add_argument("--device", default=None, help="cpu, gpu:0 ... (default: TensorFlow's choice)")
    p.add_argument("--precision", default="fp32",
                   help="comma-separated precisions to compare, e.g. fp32,bf16 (sid_ft.nets.precision; auto resolves "
                        "for --device); measured interleaved, 16-bit outputs scored against fp32's "
                        "(default: %(default)s)")
    p.add_argument("--checkpoint", help="checkpoint to time (default: released layout, random weights)")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--child-tile", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-input", help=argparse.SUPPRESS)
    p.add_argument("--child-output", help=argparse.SUPPRESS)
    p.add_argument("--child-reference", help=argparse.SUPPRESS)
    args = p.parse_args()
    from sid_ft.inference.decode import decode_job
    from sid_ft.inference.jobs import Job, output_paths
    from sid_ft.inference.options import InferOptions
    from sid_ft.inference.outputs import write_outputs
    from sid_ft.inference.predictor import DEFAULT_OVERLAP, Predictor, amplify
    from sid_ft.inference.run import run_inference
    from sid_ft.inference.summary import FileRecord
    from sid_ft.nets import precision as prec
    from sid_ft.io import raw as sid_raw

    if args.overlap is None:
        args.overlap = DEFAULT_OVERLAP
    if args.child_tile is not None:
        child(args)
        return
    h, w = (int(v) for v in args.size.lower().split("x"))
    choices = [prec.resolve(v.strip(), args.device) for v in args.precision.split(",") if v.strip()]
    names = [c.name for c in choices]
    if len(set(names)) != len(names):
        raise SystemExit(f"--precision {args.precision}: resolves to {names}, give each precision once")
    print(f"machine: {machine()}; {prec.describe_machine()}; device {args.device or 'default'}")
    for c in choices:
        print(f"precision {c.name}: {c.reason}")
    figures: dict = {"size": [h, w], "machine": machine(), "device": args.device,
                     "precisions": {c.name: c.to_dict() for c in choices}}
    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        tmp = Path(tmp)
        if args.checkpoint is None:
            from sid_reference import write_released_checkpoint

            args.checkpoint = write_released_checkpoint(tmp / "ckpt", seed=0)
        t = time.perf_counter()
        (tmp / "in").mkdir()
        files = make_inputs(tmp / "in", args.images, h, w)
        print(f"made {len(files)} DNGs of {h}x{w} in {time.perf_counter() - t:.1f} s")

        tf_gflops, np_gflops = matmul_gflops(args.device, n=args.matmul_size)
        predictors = {c.name: Predictor(args.checkpoint, device=args.device, precision=c) for c in choices}
        x = amplify(sid_raw.load_raw(files[0]).packed, 100.0)
        for pr in predictors.values():
            pr.forward(x[None])  # warm-up
        times: dict[str, list[float]] = {n: [] for n in names}
        outputs: dict[str, np.ndarray] = {}

        def bare_round() -> None:  # one forward of each precision in turn: load changes hit them alike
            for n, pr in predictors.items():
                t = time.perf_counter()
                outputs[n] = pr.forward(x[None])[0]
                times[n].append(time.perf_counter() - t)

        for _ in range(args.repeat):
            bare_round()
        flops = sid_flops(*x.shape[:2])
        e2e: dict[str, list[float]] = {n: [] for n in names}
        stages: dict[str, dict] = {}
        opts = None
        for r in range(2 if len(names) > 1 else 1):  # end-to-end batches, alternating precisions
            for n, pr in (list(predictors.items()) if r % 2 == 0 else list(predictors.items())[::-1]):
                opts = InferOptions(checkpoint=args.checkpoint, inputs=[str(f) for f in files],
                                    out_dir=str(tmp / f"out_{n}_{r}"), ratio=100.0, progress=False,
                                    device=args.device, precision=n)
                summary = run_inference(opts, predictor=pr)
                e2e[n].append(summary.wall_s / len(files))
                stages[n] = {k: statistics.median(getattr(rec, k) for rec in summary.records)
                             for k in ("decode_s", "network_s", "write_s")}
        for _ in range(max(1, args.repeat // 2)):  # the bare forward again, after the batches: drift shows up here
            bare_round()
        predictor_in, predictor_scale = predictors[names[0]].in_channels, predictors[names[0]].scale
        for pr in predictors.values():
            pr.close()
        bare = {n: statistics.median(v) for n, v in times.items()}
        per_image = {n: statistics.median(v) for n, v in e2e.items()}
        (tmp / "alone").mkdir()

        print(f"\nimage: mosaic {h}x{w}, packed {x.shape[0]}x{x.shape[1]}, network {flops / 1e9:.1f} GFLOP per image")
        first = names[0]
        for n in names:
            print(f"[{n}] bare forward (median of {len(times[n])}, before and after the batches): {bare[n]:8.3f} s/image"
                  f"  -> {flops / bare[n] / 1e9:7.1f} GFLOP/s  (each: {', '.join('%.2f' % t for t in times[n])})"
                  + (f"; {bare[n] / bare[first]:.2f}x {first}'s time" if n != first else ""))
            print(f"[{n}] end to end ({len(files)} files, median of {len(e2e[n])} batches): {per_image[n]:8.3f} "
                  f"s/image ({1 / per_image[n]:.3f} images/s), ratio to bare forward {per_image[n] / bare[n]:.3f}"
                  + (f"; {per_image[n] / per_image[first]:.2f}x {first}'s time" if n != first else ""))
            print(f"[{n}]   per-file stage medians (overlapped in the pipeline): "
                  + ", ".join(f"{k[:-2]} {v:.3f} s" for k, v in stages[n].items()))
            if n != "fp32" and "fp32" in outputs:
                q = metrics_vs(outputs[n], outputs["fp32"])
                print(f"[{n}]   output vs fp32: {q['psnr']:.2f} dB PSNR, max difference {q['max_lsb16']:.0f} LSB16")
                figures.setdefault("quality_vs_fp32", {})[n] = q
        figures.update(bare_s=bare, end_to_end_s=per_image, bare_all_s=times, end_to_end_all_s=e2e, stages=stages,
                       gflop=flops / 1e9)
        # the CPU work besides the network, measured alone: with C cores busy with the network, the
        # pipeline cannot beat 1 + (this / (C x bare)) unless the network leaves cores idle (a GPU does)
        rgb = outputs[first]
        t = time.process_time()
        job = Job(input=files[0])
        decoded = decode_job(job, opts, predictor_in, predictor_scale)
        decode_cpu = time.process_time() - t
        t = time.process_time()
        write_outputs(decoded, rgb, output_paths(job, tmp / "alone"), dataclasses.replace(opts, bits=16, metrics=False),
                      FileRecord(input=str(files[0]), status="running"))
        write_cpu = time.process_time() - t
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"  CPU-seconds per image besides the network, alone: decode+pack {decode_cpu:.2f}, 16-bit PNG "
              f"{write_cpu:.2f}; if the network keeps all {cores} cores busy the ratio is at least "
              + ", ".join(f"{1 + (decode_cpu + write_cpu) / (cores * bare[n]):.3f} ({n})" for n in names))
        print(f"matmul {args.matmul_size}^2 float32: TensorFlow {tf_gflops:7.1f} GFLOP/s, numpy {np_gflops:7.1f} GFLOP/s; "
              f"float32 network reaches {100 * flops / bare[first] / 1e9 / tf_gflops:.0f}% of TF matmul")

        np.save(tmp / "x.npy", x)
        tiles = [] if args.tiles.strip() == "none" else [0] + [int(v) for v in args.tiles.split(",") if v.strip()]
        print(f"\ntiling (overlap {args.overlap} packed px; each in a fresh process; peak RSS = VmHWM, 'network' = "
              "peak minus the RSS after loading TF, the weights and a 16x16 warm-up):")
        print(f"{'precision':>9} {'tile':>8} {'seconds':>8} {'peak MB':>8} {'network MB':>11} {'PSNR vs full':>13} "
              f"{'PSNR vs fp32 full':>18}")
        figures["tiles"] = []
        for tile in tiles:
            for n in names:
                cmd = [sys.executable, __file__, "--checkpoint", args.checkpoint, "--overlap", str(args.overlap),
                       "--child-tile", str(tile), "--child-input", str(tmp / "x.npy"), "--precision", n,
                       "--child-output", str(tmp / f"full_{n}.npy"), "--child-reference", str(tmp / "full_fp32.npy")]
                if args.device:
                    cmd += ["--device", args.device]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode or not lines:
                    print(f"{n:>9} {tile or 'full':>8} failed: {proc.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(lines[-1][7:])
                ps, pf = r.get("psnr_vs_full"), r.get("psnr_vs_fp32")
                extra = f"  GPU peak {r['gpu_peak_mb']:.0f} MB" if "gpu_peak_mb" in r else ""
                print(f"{n:>9} {tile or 'full':>8} {r['seconds']:8.2f} {r['peak_mb']:8.0f} "
                      f"{r['peak_mb'] - r['base_mb']:11.0f} {('%.2f dB' % ps) if ps is not None else '-':>13} "
                      f"{('%.2f dB' % pf) if pf is not None and not (n == 'fp32' and tile == 0) else '-':>18}{extra}")
                figures["tiles"].append({"precision": n, **r})
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))


def metrics_vs(out: np.ndarray, reference: np.ndarray) -> dict:
    """PSNR (dB) and max absolute difference in 16-bit steps of ``out`` against ``reference``."""
    from sid_ft.eval import metrics

    return {"psnr": metrics.psnr(out, reference), "max_lsb16": float(np.abs(out - reference).max() * 65535)}


if __name__ == "__main__":
    main()
