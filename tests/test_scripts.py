"""First contact: what a new user sees from the scripts with no arguments and with --help."""
from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import pytest

from sid_ft.training.preflight import RELEASED_FILES, missing_training_inputs
from sid_ft.training.options import TrainOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sid_reference import write_released_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (REPO / "scripts").glob("*.py"))


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_commands(help_text: str) -> tuple[list[str], list[list[str]]]:
    """(the lines after the last 'examples:' line, the commands among them as argv lists, continuations joined)."""
    lines = help_text.rstrip().splitlines()
    start = max(i for i, line in enumerate(lines) if line.strip() == "examples:")
    tail = lines[start + 1:]
    commands, current = [], ""
    for line in tail:
        text = line.strip()
        if current:
            current += " " + text.rstrip("\\").strip()
        elif text.startswith("python "):
            current = text.rstrip("\\").strip()
        if current and not text.endswith("\\"):
            commands.append(shlex.split(current))
            current = ""
    return tail, commands


def test_every_script_is_covered():
    assert SCRIPTS == ["calibrate", "inspect_checkpoint", "make_pairs", "test", "train_finetune"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_ends_with_real_examples(name):
    parser = load_script(name).build_parser()
    tail, commands = example_commands(parser.format_help())
    # the help ends with the examples: only comments, commands and their continuation lines follow
    for line in tail:
        text = line.strip()
        assert not text or text.startswith(("#", "python ")) or line.startswith("      "), f"not an example: {line!r}"
    own = [c for c in commands if c[1] == f"scripts/{name}.py"]
    assert len(own) >= 2, commands
    for argv in own:  # real: each parses with the script's own parser (an unknown option would exit)
        parser.parse_args(argv[2:])


def test_train_finetune_without_arguments_names_every_missing_piece(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a fresh checkout: no checkpoints/Sony/, no pairs
    code = load_script("train_finetune").main(["--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: 2 things are missing") and err.count("\n") == 1  # one message, one line
    assert "--dataset-dir" in err and "--train-list" in err
    assert "checkpoints/Sony/" in err and "checkpoints/README.md" in err and "by hand" in err
    assert all(f in err for f in RELEASED_FILES)
    assert not (tmp_path / "checkpoints").exists()  # nothing was started or written


def test_missing_pieces_one_at_a_time(tmp_path):
    (tmp_path / "pairs" / "short").mkdir(parents=True)
    (tmp_path / "pairs" / "long").mkdir()
    sony = tmp_path / "checkpoints" / "Sony"
    sony.mkdir(parents=True)
    (sony / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n')  # a half-copied download
    missing = missing_training_inputs(TrainOptions(dataset_dir=str(tmp_path / "pairs"), pretrained=str(sony),
                                                   train_dir=str(tmp_path / "run")))
    assert len(missing) == 1 and "no pretrained model" in missing[0] and "it has checkpoint only" in missing[0]
    write_released_checkpoint(sony, camera="sony", seed=0)
    opts = TrainOptions(pretrained=str(sony), train_dir=str(tmp_path / "run"))
    assert [m.split(":")[0] for m in missing_training_inputs(opts)] == ["no pairs given"]
    opts = TrainOptions(train_list=str(tmp_path / "nowhere.txt"), pretrained=str(tmp_path / "none"),
                        train_dir=str(tmp_path / "run"), from_scratch=True, trainable_scopes="all")
    assert missing_training_inputs(opts) == [f"--train-list {tmp_path / 'nowhere.txt'}: file not found"]
    # a train dir holding a checkpoint resumes: no pretrained model needed
    opts = TrainOptions(dataset_dir=str(tmp_path / "pairs"), pretrained=str(tmp_path / "none"), train_dir=str(sony))
    assert missing_training_inputs(opts) == []
