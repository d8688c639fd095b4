"""Every CLI subcommand once as a subprocess, and bad input answered with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsvae.cli import main
from tiny import as_set, tiny_overrides

TINY = as_set(tiny_overrides("train.batch_size=16", "train.progress_bar=false", width=8))


def dsvae(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "dsvae.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A data set and a run folder made through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    out = dsvae(
        "data",
        "bouncing-ball",
        "--out",
        root / "ball",
        "--n",
        "40",
        "--length",
        "6",
        "--size",
        "16",
    )
    assert "wrote 40 sequences" in out.stdout
    out = dsvae("train", "quickstart", "--data", root / "ball", "--out", root / "run",
                "--set", "train.max_epochs=1", *TINY)  # fmt: skip
    assert "run folder" in out.stdout
    return root


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _n_frames(path: Path) -> int:
    with Image.open(path) as image:
        return image.n_frames


def test_help_explains_every_subcommand():
    out = dsvae("--help").stdout
    for name in ("quickstart", "data", "train", "reconstruct", "generate", "swap", "impute"):
        assert name in out
        sub = ["data", "bouncing-ball"] if name == "data" else [name]
        text = dsvae(*sub, "--help").stdout
        assert "example" in text and "--out" in text


def test_data_set_on_disk(trained):
    frames = np.load(trained / "ball" / "frames.npy", mmap_mode="r")
    assert frames.shape == (40, 6, 16, 16, 1) and frames.dtype == np.uint8
    meta = json.loads((trained / "ball" / "meta.json").read_text())
    assert meta["seed"] == 0


@pytest.mark.parametrize("command", ["reconstruct", "swap", "impute"])
def test_operations_write_pictures(trained, command):
    out_dir = trained / f"pics-{command}"
    out = dsvae(command, trained / "run", "--data", trained / "ball", "--out", out_dir, "--n", "4")
    png = (
        out_dir
        / {"reconstruct": "reconstruction.png", "swap": "swap.png", "impute": "imputation.png"}[
            command
        ]
    )
    gif = png.with_suffix(".gif")
    assert str(png) in out.stdout and png.is_file() and gif.is_file()
    image = _png(png)
    assert image.ndim == 3 and image.shape[2] == 3 and image.std() > 0  # not a blank picture
    assert _n_frames(gif) >= 2


def test_generate_uses_training_length(trained):
    out_dir = trained / "gen"
    dsvae("generate", trained / "run" / "model", "--out", out_dir, "--n", "3", "--length", "5")
    assert _png(out_dir / "generation.png").shape[1] > _png(out_dir / "generation.png").shape[0] / 3
    dsvae("generate", trained / "run", "--out", trained / "gen2", "--n", "3")
    assert (trained / "gen2" / "generation.gif").is_file()


def test_impute_with_a_mask(trained):
    out = dsvae("impute", trained / "run", "--data", trained / "ball", "--out", trained / "imp",
                "--mask", "110011", "--indices", "0,1")  # fmt: skip
    assert "imputation.png" in out.stdout


def test_resume_through_the_cli(trained):
    out = dsvae("train", "quickstart", "--data", trained / "ball", "--out", trained / "run",
                "--resume", "--set", "train.max_epochs=2", *TINY)  # fmt: skip
    assert "trained 6 steps" in out.stdout  # 2 epochs x 3 batches of 16 from 38 sequences


def test_quickstart_tiny(tmp_path):
    out = dsvae("quickstart", "--out", tmp_path / "qs", "--n", "40", "--length", "6",
                "--steps", "3", *TINY)  # fmt: skip
    assert "held-out ELBO per sequence" in out.stdout
    names = {p.name for p in (tmp_path / "qs" / "pictures").iterdir()}
    for stem in ("reconstruction", "generation", "conditional", "swap", "imputation"):
        assert {f"{stem}.png", f"{stem}.gif"} <= names
    assert "overview.png" in names and "disentanglement on held-out pairs" in out.stdout
    assert (tmp_path / "qs" / "run" / "model" / "model.safetensors").is_file()


# ----------------------------------------------------------------------------- bad input


def run_main(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_bad_config_key(trained, tmp_path, capsys):
    code, err = run_main(capsys, "train", "quickstart", "--data", trained / "ball", "--out",
                         tmp_path / "r", "--set", "model.posterior=partial")  # fmt: skip
    assert code == 2 and "model.posterior must be one of ['factorised', 'full']" in err
    code, err = run_main(capsys, "train", "quickstart", "--data", trained / "ball", "--out",
                         tmp_path / "r", "--set", "model.zdim=3")  # fmt: skip
    assert code == 2 and "unknown key model.zdim" in err and "z_dim" in err
    assert not (tmp_path / "r").exists()


def test_malformed_yaml(trained, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    code, err = run_main(capsys, "train", bad, "--data", trained / "ball", "--out", tmp_path / "r")
    assert code == 2 and "not valid YAML" in err
    code, err = run_main(
        capsys, "train", "nosuchconfig", "--data", trained / "ball", "--out", tmp_path / "r"
    )
    assert code == 2 and "shipped configs" in err and "quickstart" in err


def test_missing_or_empty_data(tmp_path, capsys):
    code, err = run_main(
        capsys, "train", "quickstart", "--data", tmp_path / "nope", "--out", tmp_path / "r"
    )
    assert code == 2 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    code, err = run_main(
        capsys, "train", "quickstart", "--data", tmp_path / "empty", "--out", tmp_path / "r"
    )
    assert code == 2 and "frames.npy" in err
    assert not (tmp_path / "r").exists()


def test_wrong_frames(tmp_path, capsys):
    d = tmp_path / "bad"
    d.mkdir()
    np.save(d / "frames.npy", np.zeros((4, 5, 16, 16, 1), dtype=np.int64))
    code, err = run_main(capsys, "train", "quickstart", "--data", d, "--out", tmp_path / "r")
    assert code == 2 and "int64" in err and "uint8" in err


def test_data_size_mismatch_for_a_model(trained, tmp_path, capsys):
    other = tmp_path / "big"
    assert main(["data", "bouncing-ball", "--out", str(other), "--n", "3", "--length", "6"]) == 0
    code, err = run_main(capsys, "swap", trained / "run", "--data", other, "--out", tmp_path / "p")
    assert code == 2 and "[1, 32, 32]" in err and "[1, 16, 16]" in err


def test_model_folder_problems(trained, tmp_path, capsys):
    code, err = run_main(capsys, "generate", tmp_path, "--out", tmp_path / "p")
    assert code == 2 and "no config.json" in err
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "config.json").write_text((trained / "run" / "model" / "config.json").read_text())
    (fake / "model.safetensors").write_bytes(b"\x80\x04not safetensors at all")
    code, err = run_main(capsys, "generate", fake, "--out", tmp_path / "p")
    assert code == 2 and "not a valid safetensors file" in err


def test_bad_mask_and_existing_outputs(trained, tmp_path, capsys):
    code, err = run_main(capsys, "impute", trained / "run", "--data", trained / "ball", "--out",
                         tmp_path / "p", "--mask", "000000")  # fmt: skip
    assert code == 2 and "hides every frame" in err
    code, err = run_main(capsys, "impute", trained / "run", "--data", trained / "ball", "--out",
                         tmp_path / "p", "--mask", "11")  # fmt: skip
    assert code == 2 and "6 characters" in err
    code, err = run_main(capsys, "data", "bouncing-ball", "--out", trained / "ball", "--n", "3")
    assert code == 2 and "--overwrite" in err
    code, err = run_main(
        capsys, "train", "quickstart", "--data", trained / "ball", "--out", trained / "run"
    )
    assert code == 2 and "--resume" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train"])
    assert exc.value.code == 2
    assert "--data" in capsys.readouterr().err


def test_export_rewrites_the_model(trained, capsys):
    before = (trained / "run" / "model" / "model.safetensors").read_bytes()
    assert main(["export", str(trained / "run")]) == 0
    assert "model:" in capsys.readouterr().out
    assert (trained / "run" / "model" / "model.safetensors").read_bytes() == before
