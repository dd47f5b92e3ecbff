"""--precision: the capability probe, auto's choice, 16-bit graphs, their quality against float32, training."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sid_ft.nets import precision as prec
from sid_ft._tf import tf1
from sid_ft.errors import SidFtError
from sid_ft.eval.metrics import psnr
from sid_ft.inference.predictor import Predictor, export_savedmodel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sid_reference import write_released_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

XEON = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC_ROME = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 fma\n"
ZEN4 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"


def caps_from(tmp_path: Path, cpuinfo: str, gpus=(), system: str = "Linux", environ=None) -> prec.Capabilities:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    return prec.probe(system=system, cpuinfo_path=path, gpus=list(gpus), environ=environ or {})


# --------------------------------------------------------------------------- probe and auto


def test_probe_reads_bf16_from_cpu_flags_not_the_vendor(tmp_path):
    assert caps_from(tmp_path, XEON).cpu_bf16
    assert caps_from(tmp_path, ZEN4).cpu_bf16  # an AMD CPU with the flag has it
    assert not caps_from(tmp_path, EPYC_ROME).cpu_bf16  # an AMD CPU without it has not
    mac = caps_from(tmp_path, XEON, system="Darwin")
    assert not mac.cpu_bf16 and "Linux only" in mac.cpu_note
    off = caps_from(tmp_path, XEON, environ={"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert not off.cpu_bf16 and "TF_ENABLE_ONEDNN_OPTS" in off.cpu_note
    assert not prec.probe(system="Linux", cpuinfo_path=tmp_path / "missing", gpus=[]).cpu_bf16
    assert prec.cpu_flags("Features\t: fp asimd bf16\n") == {"fp", "asimd", "bf16"}


def test_auto_picks_bf16_on_a_cpu_with_it_and_fp32_without(tmp_path):
    with_bf16 = prec.resolve("auto", "cpu", caps_from(tmp_path, XEON))
    assert with_bf16.name == "bf16" and "avx512_bf16" in with_bf16.reason and with_bf16.requested == "auto"
    assert with_bf16.dtype_name == "bfloat16"
    without = prec.resolve("auto", "cpu", caps_from(tmp_path, EPYC_ROME))
    assert without.name == "fp32" and "no fast 16-bit" in without.reason
    assert prec.resolve("auto", None, caps_from(tmp_path, EPYC_ROME)).name == "fp32"  # TF's choice: the CPU


def test_auto_picks_fp16_on_a_gpu_with_tensor_cores(tmp_path):
    a100 = prec.GpuInfo("NVIDIA A100-SXM4-40GB", (8, 0))
    p100 = prec.GpuInfo("Tesla P100-PCIE-16GB", (6, 0))
    caps = caps_from(tmp_path, EPYC_ROME, gpus=[a100, p100])
    assert prec.resolve("auto", None, caps).name == "fp16"  # TensorFlow's choice is the first GPU
    assert prec.resolve("auto", "gpu:0", caps).name == "fp16"
    assert prec.resolve("auto", "gpu:1", caps).name == "fp32"  # Pascal: no tensor cores
    assert "6.0" in prec.resolve("auto", "gpu:1", caps).reason
    assert prec.resolve("auto", "cpu", caps).name == "fp32"  # the run stays on this CPU, which lacks bf16
    assert prec.resolve("auto", "cpu", caps_from(tmp_path, XEON, gpus=[a100])).name == "bf16"
    with pytest.raises(SidFtError, match="sees 2 GPU"):
        prec.resolve("auto", "gpu:2", caps)


def test_explicit_choices(tmp_path):
    no_caps = None  # fp32 needs no probe at all
    assert prec.resolve("fp32", "cpu", no_caps).name == "fp32"
    assert prec.resolve(None).name == "fp32"
    slow = prec.resolve("bf16", "cpu", caps_from(tmp_path, EPYC_ROME))
    assert slow.name == "bf16" and "no faster" in slow.reason  # honoured, with the warning
    assert prec.resolve("FP16", "cpu", caps_from(tmp_path, XEON)).name == "fp16"
    with pytest.raises(SidFtError, match="expected one of"):
        prec.resolve("half", "cpu", caps_from(tmp_path, XEON))


def test_configure_session_switches_the_grappler_rewrites_on():
    from tensorflow.core.protobuf import rewriter_config_pb2

    tf = tf1()
    on = rewriter_config_pb2.RewriterConfig.ON
    bf16 = prec.Precision("bf16", "bf16", "")
    config = prec.configure_session(tf.ConfigProto(), bf16)
    assert config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == on
    assert config.graph_options.rewrite_options.auto_mixed_precision != on
    fp16 = prec.Precision("fp16", "fp16", "")
    config = prec.configure_session(tf.ConfigProto(), fp16, device_is_gpu=True)
    assert config.graph_options.rewrite_options.auto_mixed_precision == on
    assert prec.configure_session(tf.ConfigProto(), prec.resolve("fp32")) == tf.ConfigProto()
    with pytest.raises(SidFtError, match="CUDA"):
        prec.configure_session(tf.ConfigProto(), fp16, device_is_gpu=False)


# --------------------------------------------------------------------------- inference


def _bf16_psnr_floor() -> float:
    """How close bf16 output must come to float32's, in dB PSNR.  With native bfloat16 (oneDNN on AVX512_BF16 or
    AMX) it stays above 50 dB (the bound these tests have held to on a Xeon with AMX); without them TensorFlow's generic bfloat16
    kernels round every partial result (measured 46.5 and 47.5 dB on a 2-core AMD EPYC), so the bound is lower."""
    from sid_ft.nets.precision import probe

    return 50.0 if probe(gpus=()).cpu_bf16 else 45.0


BF16_PSNR_FLOOR = _bf16_psnr_floor()


def smooth_packed(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A packed, amplified image with structure and some noise, (h, w, 4) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 9.0
    x = np.stack([0.3 + 0.25 * np.sin(xx + c) * np.cos(0.7 * yy) for c in range(4)], -1)
    return np.clip(x + rng.normal(0, 0.02, x.shape), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def released(released_checkpoint) -> str:
    return released_checkpoint("sony", 0)


def graph_dtypes(predictor: Predictor, op_type: str) -> set[str]:
    return {op.get_attr("T").name for op in predictor.graph.get_operations() if op.type == op_type}


@pytest.mark.slow
def test_bf16_graph_keeps_float32_weights_input_and_output(released):
    tf = tf1()
    with Predictor(released, precision="bf16") as p:
        assert p.precision.name == "bf16"
        assert graph_dtypes(p, "Conv2D") == {"bfloat16"}
        assert graph_dtypes(p, "Conv2DBackpropInput") == {"bfloat16"}  # SID's upsampling
        with p.graph.as_default():
            assert {v.dtype.base_dtype for v in tf.global_variables()} == {tf.float32}
        assert p.input.dtype == tf.float32 and p.output.dtype == tf.float32
    with Predictor(released) as p:
        assert graph_dtypes(p, "Conv2D") == {"float32"}


def _quality(prefix: str, x: np.ndarray, name: str) -> tuple[float, float]:
    with Predictor(prefix) as p32, Predictor(prefix, precision="bf16") as p16:
        ref, out = p32.predict(x), p16.predict(x)
    value, lsb = psnr(out, ref), float(np.abs(out - ref).max() * 65535)
    print(f"{name}: bf16 vs float32 {value:.2f} dB PSNR, max difference {lsb:.0f} LSB16")
    return value, lsb


@pytest.mark.slow
def test_bf16_output_against_float32_on_a_released_layout_checkpoint(released):
    value, lsb = _quality(released, smooth_packed(), "released layout, random values")
    assert value >= BF16_PSNR_FLOOR
    assert 0 < lsb < 65535 * 0.05  # it does differ, by well under 5% of the range


@pytest.mark.slow
def test_bf16_output_against_float32_on_a_trained_checkpoint(tmp_path, released):
    from sid_ft.training.loop import train
    from sid_ft.training.options import TrainOptions
    from tests.builders import make_pairs_tree

    data = make_pairs_tree(tmp_path / "data", scenes=("00001", "00002"), shape=(128, 160))
    result = train(TrainOptions(dataset_dir=str(data), split="all", pretrained=released,
                                train_dir=str(tmp_path / "run"), trainable_scopes="all", steps=12, patch_size=32,
                                lr=1e-4, save_every=100, progress=False, log_every=4), report=lambda m: None)
    value, lsb = _quality(result.checkpoint, smooth_packed(seed=1), "trained 12 steps (all layers)")
    assert value >= BF16_PSNR_FLOOR and lsb > 0


@pytest.mark.slow
def test_tiled_bf16_blends_in_float32(released):
    import ml_dtypes  # installed with TensorFlow

    x = smooth_packed(96, 160)
    with Predictor(released, precision="bf16", tile=64, overlap=32) as t16, \
            Predictor(released, tile=64, overlap=32) as t32:
        a, b = t16.predict(x), t32.predict(x)
    assert a.dtype == np.float32 and psnr(a, b) >= BF16_PSNR_FLOOR
    # each tile's output is on bfloat16's grid; the blend of two tiles across an overlap is not
    on_grid = a == a.astype(ml_dtypes.bfloat16).astype(np.float32)
    assert on_grid[:40, :40].all() and not on_grid.all()  # the corner: one tile alone


@pytest.mark.slow
def test_savedmodel_in_bf16_has_float32_signature_and_reproduces_the_predictor(tmp_path, released):
    tf = tf1()
    x = smooth_packed(48, 64)[None]
    with Predictor(released, precision="bf16", device="cpu") as p:
        expected = p.forward(x)
        export_savedmodel(p, tmp_path / "sm")
    with tf.Graph().as_default() as graph, tf.Session(graph=graph) as sess:
        meta = tf.saved_model.loader.load(sess, [tf.saved_model.tag_constants.SERVING], str(tmp_path / "sm"))
        sig = meta.signature_def["serving_default"]
        assert sig.inputs["packed"].dtype == tf.float32.as_datatype_enum
        assert sig.outputs["rgb"].dtype == tf.float32.as_datatype_enum
        assert {op.get_attr("T").name for op in graph.get_operations() if op.type == "Conv2D"} == {"bfloat16"}
        got = sess.run(sig.outputs["rgb"].name, {sig.inputs["packed"].name: x})
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.slow
def test_cli_records_the_precision_in_summary_json(tmp_path, released):
    from tests.builders import make_dng

    (tmp_path / "in").mkdir()
    make_dng(tmp_path / "in" / "a_00_0.1s.dng")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "test.py"), "--checkpoint", released,
                           "--out-dir", str(tmp_path / "out"), str(tmp_path / "in"), "--ratio", "100",
                           "--precision", "auto", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    info = json.loads((tmp_path / "out" / "summary.json").read_text())["precision"]
    expected = prec.resolve("auto", "cpu")
    assert info["precision"] == expected.name and info["requested"] == "auto" and info["reason"]
    assert f"precision {expected.name}" in proc.stderr  # auto says what it picked


# --------------------------------------------------------------------------- training


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bf16", "fp16"])
def test_16bit_training_keeps_float32_checkpoints(tmp_path, released, name):
    from sid_ft.training.loop import train
    from sid_ft.training.options import TrainOptions
    from tests.builders import make_pairs_tree

    tf = tf1()
    data = make_pairs_tree(tmp_path / "data", scenes=("00001",), shape=(64, 96))
    common = dict(dataset_dir=str(data), split="all", pretrained=released, train_dir=str(tmp_path / "run"),
                  patch_size=32, save_every=100, progress=False, log_every=1, g_add_head=False, g_add_affine=True,
                  g_add_rank=2)
    result = train(TrainOptions(steps=3, precision=name, **common), report=lambda m: None)
    assert result.mode == "inside" and result.last_loss is not None and np.isfinite(result.last_loss)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["precision"]["precision"] == name
    reader = tf.train.load_checkpoint(result.checkpoint)
    dtypes = reader.get_variable_to_dtype_map()
    assert all(dt == tf.float32 for n, dt in dtypes.items() if n != "global_step")
    assert not any("loss_scale" in n for n in dtypes)  # fp16's scale is not in the checkpoint
    # the checkpoint resumes in float32 (and the other way round), precision being a run-time choice
    resumed = train(TrainOptions(steps=5, precision="fp32", **common), report=lambda m: None)
    assert resumed.resumed and resumed.global_step == 5


@pytest.mark.slow
def test_fp16_scales_the_loss_and_bf16_does_not():
    from sid_ft.nets.g_add.config import GAddConfig
    from sid_ft.training.graph import build_train_graph

    tf = tf1()
    for name, scaled in (("fp16", True), ("bf16", False)):
        tg = build_train_graph("sony", GAddConfig(), "frozen", ["g_add"], 1e-3, 10, 0.1,
                               precision=prec.Precision(name, name, ""))
        with tg.graph.as_default():
            local = [v.op.name for v in tf.local_variables()]
            saved = [v.op.name for v in tf.global_variables()]
        assert any("loss_scale" in n for n in local) == scaled
        assert not any("loss_scale" in n for n in saved)
        assert {op.get_attr("T").name for op in tg.graph.get_operations()
                if op.type == "Conv2D" and op.name.startswith("g_conv1_1")} == {prec.Precision(name, name, "").dtype_name}
    # the cached mode's head runs in 16-bit; the network that fills the cache stays float32
    tg = build_train_graph("sony", GAddConfig(), "cached", ["g_add"], 1e-3, 10, 0.1,
                           precision=prec.Precision("bf16", "bf16", ""))
    convs = {op.name.split("/")[0]: op.get_attr("T").name for op in tg.graph.get_operations() if op.type == "Conv2D"}
    assert convs["g_conv1_1"] == "float32" and convs["g_add_conv1"] == "bfloat16"


# --------------------------------------------------------------------------- benchmarks/gpu_check.sh


def test_gpu_check_rejects_unknown_options_and_devices(tmp_path):
    script = REPO / "benchmarks" / "gpu_check.sh"
    bad = subprocess.run(["bash", str(script), "--frobnicate"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown option --frobnicate" in bad.stderr and "--device" in bad.stderr
    bad = subprocess.run(["bash", str(script), "--device", "tpu"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "expected gpu:K" in bad.stderr


@pytest.mark.slow
def test_gpu_check_smoke_on_cpu(tmp_path):
    """Smoke test: every command of the GPU check runs on the CPU at tiny sizes and writes its figures."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--out",
                           str(tmp_path / "out"), "--size", "64x96", "--patch-size", "16", "--modes", "cached"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    strict = json.loads((tmp_path / "out" / "infer_fp32.json").read_text())
    mixed = json.loads((tmp_path / "out" / "infer_tf32_fp16.json").read_text())
    assert set(strict["bare_s"]) == {"fp32"} and set(mixed["bare_s"]) == {"fp32", "fp16"}
    assert mixed["quality_vs_fp32"]["fp16"]["psnr"] > 50
    train16 = json.loads((tmp_path / "out" / "train_tf32_fp16.json").read_text())
    assert set(train16["median_step_s"]) == {"cached fp32", "cached fp16"}
    assert "fp16" in proc.stdout.split("summary (")[-1] and "cached" in proc.stdout.split("summary (")[-1]
