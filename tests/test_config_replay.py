"""``--config RUN/config.json``: a recorded run's options start it again; flags on the command line override them.

In-process and without training: the parser, :func:`sid_ft.cli.train.options_from_args`, and a
``config.json`` written the way the training loop writes it (``"options"``: ``dataclasses.asdict``).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from sid_ft.cli.train import main, options_from_args, parse_args
from sid_ft.training.options import TrainOptions

RECORDED = TrainOptions(
    dataset_dir="pairs", train_list="pairs/list.txt", split="all", pretrained="released/Sony",
    train_dir="runs/a", epochs=3, patch_size=256, batch_size=2, lr=3e-4, lr_decay_step=40, lr_decay_factor=0.5,
    g_add_down_init="xavier", lr_warmup_steps=5, save_every=20, keep=2, log_every=1, seed=7, g_add_depth=3,
    g_add_width=8, g_add_packed_input=True, g_add_linear=True, g_add_head=True, g_add_affine=True, g_add_rank=4,
    trainable_scopes="g_add/", checkpoint_exclude_scopes="g_add,g_conv10", feature_cache=False,
    feature_dtype="float32", cache_dir="cache", cache_max_gb=1.5, ratio_cap=250.0, camera="sony",
    precision="bf16", progress=False,
)
"""A run with every option away from its default (but --force-unlock, which is never replayed)."""


def write_config(run: Path, options: dict) -> Path:
    """A train dir's config.json as the training loop writes it (only the parts --config reads matter)."""
    run.mkdir(parents=True, exist_ok=True)
    path = run / "config.json"
    path.write_text(json.dumps({"options": options, "mode": "frozen", "steps": 60}, indent=2))
    return path


def replay(argv: list[str]) -> TrainOptions:
    return options_from_args(parse_args(argv))


def test_config_reproduces_the_recorded_options(tmp_path):
    path = write_config(tmp_path / "run", dataclasses.asdict(RECORDED))
    assert replay(["--config", str(path)]) == RECORDED
    assert RECORDED != TrainOptions()  # the comparison could fail: no option was left at its default


def test_flags_on_the_command_line_override_the_recorded_ones(tmp_path):
    path = write_config(tmp_path / "run", dataclasses.asdict(RECORDED))
    assert replay(["--config", str(path), "--train-dir", "runs/b"]) == dataclasses.replace(RECORDED, train_dir="runs/b")
    assert replay(["--lr", "0.01", "--config", str(path)]).lr == 0.01  # the flag's place does not matter
    assert replay(["--config", str(path), "--no-g-add-head"]).g_add_head is False
    # a length on the command line replaces the recorded one (--steps and --epochs exclude each other)
    longer = replay(["--config", str(path), "--steps", "90"])
    assert (longer.steps, longer.epochs) == (90, None)
    assert dataclasses.replace(longer, steps=None, epochs=3) == RECORDED


def test_force_unlock_is_not_replayed(tmp_path):
    path = write_config(tmp_path / "run", dataclasses.asdict(dataclasses.replace(RECORDED, force_unlock=True)))
    assert replay(["--config", str(path)]).force_unlock is False
    assert replay(["--config", str(path), "--force-unlock"]).force_unlock is True


def test_without_config_the_defaults_are_the_dataclass_defaults():
    assert replay([]) == TrainOptions()


@pytest.mark.parametrize("case", ["missing", "not json", "no options", "unknown key", "wrong type", "wrong choice"])
def test_a_bad_config_file_is_one_line_naming_the_file(tmp_path, capsys, case):
    run = tmp_path / "run"
    options = dataclasses.asdict(TrainOptions(train_dir=str(tmp_path / "elsewhere")))
    if case == "missing":
        path = run / "config.json"
    elif case == "not json":
        run.mkdir()
        path = run / "config.json"
        path.write_text("{options: ")
    elif case == "no options":
        path = write_config(run, options)
        path.write_text(json.dumps({"mode": "full"}))
    else:
        key, value = {"unknown key": ("g_add_colour", 1), "wrong type": ("steps", "ten"),
                      "wrong choice": ("precision", "fp8")}[case]
        path = write_config(run, options | {key: value})
    code = main(["--config", str(path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1, err
    if case in ("unknown key", "wrong type", "wrong choice"):
        assert key in err
    assert not (tmp_path / "elsewhere").exists()  # nothing was started
