"""Hostile files on the read side: each is one line ``dsvae CMD: error: ...`` naming the
file (and the key), exit status 2, no traceback, nothing new left behind.

Four classes, as in docs/robustness.md ("Hostile files: sizes, text, weights"): text files
(:mod:`dsvae.text_files`), a data set's ``meta.json`` (:mod:`dsvae.data.meta`), sizes
(configs, models, ``labels.npz``) and weights (safetensors, checkpoints, ``metrics.csv``).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from dsvae.cli import main
from dsvae.config import ModelConfig, load_config
from dsvae.config_files import dump_yaml, parse_override
from dsvae.data import make_bouncing_ball_dataset
from dsvae.data.meta import check_meta
from dsvae.data.storage import read_labels
from dsvae.errors import ConfigError, DataError, DsvaeError, ModelFileError
from dsvae.model import build_model
from dsvae.model.dsvae import DSVAE
from dsvae.model.saved import load_checked_state
from dsvae.model.size import MAX_PARAMETERS, check_model_size
from dsvae.text_files import MAX_TEXT_BYTES, parse_json, parse_yaml, read_json, read_yaml
from dsvae.train import train
from tiny import as_set, tiny_overrides

TINY = tiny_overrides(
    "train.batch_size=8",
    "train.progress_bar=false",
    "train.max_steps=2",
    "train.log_every_n_steps=1",
)
BOMB = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    + ["model: *a8"]
)
"""9^9 values once expanded, 90 as written."""


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A data set and a 2-step run of it (with checkpoints/epoch0000.ckpt and last.ckpt)."""
    root = tmp_path_factory.mktemp("good")
    make_bouncing_ball_dataset(root / "data", n=20, length=4, size=16, seed=0)
    config = load_config("quickstart", TINY)
    (root / "config.yaml").write_text(dump_yaml(config), encoding="utf-8")
    train(config, root / "data", root / "run")
    assert (root / "run" / "checkpoints" / "epoch0000.ckpt").is_file()
    return root


@pytest.fixture
def case(good, tmp_path) -> Path:
    """A fresh copy of the good folder to spoil."""
    shutil.copytree(good, tmp_path / "case", symlinks=True)
    return tmp_path / "case"


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root``: its kind, and the content of small files (the size and
    time of large ones, which may be sparse)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel, info = str(path.relative_to(root)), path.lstat()
        if path.is_symlink() or not path.is_file():
            out[rel] = "link" if path.is_symlink() else "other"
        elif info.st_size > 1 << 20:
            out[rel] = f"{info.st_size}:{info.st_mtime_ns}"
        else:
            out[rel] = path.read_bytes().hex()
    return out


def refused(capsys, root: Path, argv: list[str], pattern: str) -> str:
    """Run ``dsvae ARGV`` in ``root``; assert one error line matching ``pattern``, status 2,
    no traceback, the folder as it was. Returns the line."""
    before = _snapshot(root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        capsys.readouterr()
        start = time.monotonic()
        code = main(argv)
        elapsed = time.monotonic() - start
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(f"dsvae {argv[0]}: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert _snapshot(root) == before, "the command left something behind"
    assert elapsed < 30
    return lines[0]


GENERATE = ["generate", "run", "--out", "pictures", "--n", "2"]
EXPORT = ["export", "run"]
RESUME = ["train", "run/config.yaml", "--data", "data", "--out", "run", "--resume",
          "--set", "train.max_steps=4"]  # fmt: skip
TRAIN = ["train", "config.yaml", "--data", "data", "--out", "new", *as_set(TINY)]


# ----------------------------------------------------------------------------- text files


def test_pipes_devices_and_folders_are_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")  # no one writes it: a plain open would block forever
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    (tmp_path / "folder.json").mkdir()
    start = time.monotonic()
    for name, what in [("pipe", "a named pipe"), ("zero", "a device"), ("folder", "a folder")]:
        with pytest.raises(DsvaeError, match=f"{name}.json is {what}, not a"):
            read_json(tmp_path / f"{name}.json")
    assert time.monotonic() - start < 1


def test_a_file_over_the_size_cap_says_how_large_it_is(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(MAX_TEXT_BYTES + (1 << 20))  # sparse: 17 MiB claimed, nothing written
    with pytest.raises(DsvaeError, match=r"big\.yaml is too large \(17\.0 MiB; at most 16\.0 MiB"):
        read_yaml(big)


def test_text_that_is_not_utf8_names_the_byte_and_its_offset(tmp_path):
    path = tmp_path / "meta.json"
    path.write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(
        DsvaeError, match=r"meta\.json is not UTF-8 text \(byte 0xe9 at offset 13\)"
    ):
        read_json(path)


@pytest.mark.parametrize("depth", [101, 100_000])
def test_nesting_deeper_than_100_is_refused(depth):
    doc = "[" * depth + "]" * depth
    for parse, text in [(parse_json, f'{{"z": {doc}}}'), (parse_yaml, f"z: {doc}")]:
        with pytest.raises(ValueError, match="nests values deeper than 100 levels"):
            parse(text)
    with pytest.raises(ValueError, match="deeper than 100 levels at model.z_dim$"):
        parse_json('{"model": {"z_dim": ' + "[" * 150 + "]" * 150 + "}}")


def test_integers_of_more_than_100_digits_name_their_key():
    digits = "9" * 5000  # more than Python's int-string limit, which would raise
    with pytest.raises(ValueError, match=r"integer of 5000 digits \(at most 100\) at model\.z_dim"):
        parse_json(f'{{"model": {{"z_dim": {digits}}}}}')
    with pytest.raises(ValueError, match=r"integer of 5000 digits \(at most 100\) at a\[1\]"):
        parse_yaml(f"a: [1, {digits}]")
    assert parse_json("[" + "9" * 100 + "]") == [int("9" * 100)]


def test_yaml_aliases_that_loop_or_explode_are_refused():
    start = time.monotonic()
    with pytest.raises(ValueError, match="expands its aliases to more than 1,000,000 values"):
        parse_yaml(BOMB)
    with pytest.raises(ValueError, match=r"alias that contains itself at model\[0\]"):
        parse_yaml("model: &loop [*loop]")
    assert time.monotonic() - start < 5
    shared = parse_yaml("a: &x [1, 2]\nb: *x\n")  # an ordinary alias still reads
    assert shared == {"a": [1, 2], "b": [1, 2]}
    assert parse_json('{"elbo": NaN}')["elbo"] != 0  # NaN metrics, as json.dump writes them


def test_overrides_are_read_with_the_same_limits():
    with pytest.raises(ConfigError, match=r"override 'model=\*a8'.*is not valid YAML"):
        parse_override("model=*a8")  # an alias without its anchor
    with pytest.raises(ConfigError, match=r"'model.z_dim=.*the value has an integer of 200"):
        parse_override("model.z_dim=" + "1" * 200)
    assert parse_override("model.frames.channels=[4, 8]") == (
        ["model", "frames", "channels"],
        [4, 8],
    )


@pytest.mark.parametrize(
    "name, content, expect",
    [
        ("bomb", BOMB.encode(), r"config file config\.yaml expands its aliases"),
        ("long-int", b"model:\n  z_dim: " + b"9" * 5000, r"integer of 5000 digits.*model\.z_dim"),
        ("not-utf8", b"model:\n  z_dim: caf\xe9\n", r"not UTF-8 text \(byte 0xe9 at offset 19\)"),
        ("tag", b"model: !!python/object/apply:os.getcwd []\n", r"config\.yaml is not valid YAML"),
    ],
)
def test_a_hostile_config_is_one_line_and_writes_nothing(case, capsys, name, content, expect):
    (case / "config.yaml").write_bytes(content)
    refused(capsys, case, TRAIN, expect)


def test_a_config_that_is_a_pipe_does_not_block(case, capsys):
    (case / "config.yaml").unlink()
    os.mkfifo(case / "config.yaml")
    refused(capsys, case, TRAIN, r"config file config\.yaml is a named pipe, not a regular file")


def test_a_damaged_run_config_is_named(case, capsys):
    (case / "run" / "config.yaml").write_text("model: &loop [*loop]\n")
    refused(capsys, case, EXPORT, r"run/config\.yaml holds an alias that contains itself at "
            r"model\[0\]; the run folder is damaged")  # fmt: skip


def test_a_saved_model_config_nested_too_deep_is_named(case, capsys):
    path = case / "run" / "model" / "config.json"
    doc = json.loads(path.read_text())
    text = json.dumps(doc).replace('"z_dim": 3', '"z_dim": ' + "[" * 100_000 + "]" * 100_000)
    path.write_text(text)
    refused(capsys, case, GENERATE, r"model/config\.json nests values deeper than 100 levels")


# ----------------------------------------------------------------------------- meta.json

META = {"name": "ball", "source": "dsvae", "seed": 0, "licence": "CC0",
        "frames_shape": [20, 4, 16, 16, 1], "frames_dtype": "uint8"}  # fmt: skip


@pytest.mark.parametrize(
    "key, value, expect",
    [
        ("frames_shape", None, "frames_shape must be a list of positive integers, got None"),
        ("frames_shape", 20, "frames_shape must be a list of positive integers, got 20"),
        ("frames_shape", "20x4", "frames_shape must be a list of positive integers, got '20x4'"),
        ("frames_shape", [20, 4, 16, 16, 0], "frames_shape must be a list of positive"),
        ("frames_shape", [20, 4, True, 16, 1], "frames_shape must be a list of positive"),
        ("frames_shape", [20, 5, 16, 16, 1], r"says frames_shape \[20, 5, 16, 16, 1\] but"),
        ("frames_dtype", "float64", r"frames_dtype must be one of \['uint8', 'float32'\]"),
        ("name", [1], r"name must be a string, got \[1\]"),
        ("seed", "zero", "seed must be an integer or null, got 'zero'"),
        ("spectrogram", [1], r"spectrogram must be a mapping, got \[1\]"),
        ("speakers", [1, 2], r"speakers must be a list of names, got \[1, 2\]"),
    ],
)
def test_meta_values_of_the_wrong_type_name_their_key(key, value, expect):
    with pytest.raises(DataError, match=r"^data/meta\.json.*" + expect):
        check_meta({**META, key: value}, "data/meta.json", (20, 4, 16, 16, 1), np.dtype("uint8"))
    assert check_meta(dict(META), "data/meta.json", (20, 4, 16, 16, 1)) == META


def test_a_meta_json_of_the_wrong_shape_type_through_the_cli(case, capsys):
    path = case / "data" / "meta.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "frames_shape": {"n": 20}}))
    refused(capsys, case, TRAIN, r"data/meta\.json: frames_shape must be a list of positive "
            r"integers, got \{'n': 20\}")  # fmt: skip


def test_a_meta_json_that_is_dev_zero_is_refused(case, capsys):
    (case / "data" / "meta.json").unlink()
    (case / "data" / "meta.json").symlink_to("/dev/zero")
    refused(capsys, case, TRAIN, r"meta\.json is a device, not a regular file; fix or rebuild it")


# ----------------------------------------------------------------------------- sizes


def test_impossible_model_sizes_are_refused_before_allocation():
    config = ModelConfig(hidden_dim=65_536, frame_shape=[1, 16, 16])
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"would have \d\.\d+e\+1\d parameters \([\d.]+ [GT]iB as "
                       r"float32\), more than the 1\.07e\+09 allowed"):  # fmt: skip
        build_model(config)
    assert time.monotonic() - start < 10
    small = ModelConfig(f_dim=4, z_dim=3, hidden_dim=8, frame_shape=[1, 16, 16])
    count = check_model_size(DSVAE, small)
    assert count == sum(p.numel() for p in build_model(small).parameters()) < MAX_PARAMETERS


@pytest.mark.parametrize(
    "override, expect",
    [
        ("model.z_dim=1000000000", "model.z_dim must be at most 65,536, got 1,000,000,000"),
        ("model.frames.kernel=1001", r"model.frames.kernel must be odd and in 1\.\.31"),
        ("train.seed=-1", "train.seed must be >= 0, got -1"),
        ("train.seed=4294967296", "train.seed must be at most 4,294,967,295"),
        ("train.threads=100000", "train.threads must be at most 1,024"),
        ("train.max_steps=" + "9" * 30, "train.max_steps must fit in 64 bits, got a 30-digit"),
    ],
)
def test_config_integers_are_capped(override, expect):
    with pytest.raises(ConfigError, match=expect):
        load_config("quickstart", [override])


def test_a_huge_latent_in_a_saved_model_names_its_file(case, capsys):
    path = case / "run" / "model" / "config.json"
    doc = json.loads(path.read_text())
    doc["model"]["hidden_dim"] = 60_000
    path.write_text(json.dumps(doc))
    refused(capsys, case, GENERATE, r"model/config\.json: the model would have \S+ parameters")


def _npy_header(shape: str, descr: str = "<f8") -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


def _zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_npz_members_are_checked_against_their_declared_sizes(tmp_path):
    (tmp_path / "labels.npz").write_bytes(
        _zip(**{"positions.npy": _npy_header("(20, 1000000000000)") + b"\0" * 64})
    )
    with pytest.raises(DataError, match=r"labels\.npz: member positions\.npy claims shape "
                       r"\(20, 1000000000000\) of float64 \(\d+\.\d TiB\) but holds 64 bytes"):  # fmt: skip
        read_labels(tmp_path, 20)
    (tmp_path / "labels.npz").write_bytes(_zip(**{"positions.npy": b"not an array"}))
    with pytest.raises(DataError, match=r"could not read .*labels\.npz"):
        read_labels(tmp_path, 20)
    good = io.BytesIO()
    np.savez(good, positions=np.zeros((20, 2), np.float32))
    (tmp_path / "labels.npz").write_bytes(good.getvalue())
    assert read_labels(tmp_path, 20)["positions"].shape == (20, 2)


def test_an_npz_bomb_through_the_cli(case, capsys):
    member = _npy_header("(20, 1000000000000)") + b"\0" * 64
    (case / "data" / "labels.npz").write_bytes(_zip(**{"positions.npy": member}))
    refused(capsys, case, TRAIN, r"labels\.npz: member positions\.npy claims shape")


# ----------------------------------------------------------------------------- weights


def _nan_first(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    name = next(k for k, v in sorted(tensors.items()) if v.is_floating_point())
    return {**tensors, name: torch.full_like(tensors[name], float("nan"))}, name


def test_nan_weights_in_a_saved_model_are_named(case, capsys):
    path = case / "run" / "model" / "model.safetensors"
    tensors, name = _nan_first(load_file(path))
    save_file(tensors, path, metadata={"format": "dsvae-model"})
    refused(capsys, case, GENERATE, rf"model\.safetensors: tensor {re.escape(name)} holds NaN or "
            "infinite values")  # fmt: skip


def test_missing_and_unexpected_tensors_are_named():
    model = build_model(ModelConfig(f_dim=4, z_dim=3, hidden_dim=8, frame_shape=[1, 16, 16]))
    state = dict(model.state_dict())
    first = sorted(state)[0]
    del state[first]
    state["extra.weight"] = torch.zeros(2)
    with pytest.raises(ModelFileError, match=rf"w\.st does not match c\.json: it lacks tensor "
                       rf"{re.escape(first)} and has tensor extra\.weight that it does not know"):  # fmt: skip
        load_checked_state(model, state, "w.st", "c.json")


def _rewrite_ckpt(path: Path, change) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    torch.save(change(state), path)


def test_a_checkpoint_without_what_a_resume_needs_names_an_older_complete_one(case, capsys):
    _rewrite_ckpt(case / "run/checkpoints/last.ckpt", lambda s: {"state_dict": s["state_dict"]})
    refused(capsys, case, RESUME, r"checkpoints/last\.ckpt is incomplete: it lacks "
            r"'optimizer_states', 'lr_schedulers', 'loops', .*which a resume needs; "
            r"epoch0000\.ckpt beside it \(step \d+\) is complete: copy it over last\.ckpt")  # fmt: skip
    # export needs only the weights: the same checkpoint still gives a model
    assert main(["export", str(case / "run")]) == 0


def test_a_checkpoint_with_a_step_of_the_wrong_type_cannot_be_resumed(case, capsys):
    _rewrite_ckpt(case / "run/checkpoints/last.ckpt", lambda s: {**s, "global_step": "two"})
    (case / "run/checkpoints/epoch0000.ckpt").unlink()
    refused(
        capsys, case, RESUME, r"last\.ckpt is damaged: global_step must be of type int, got 'two'$"
    )


def test_nan_weights_in_a_checkpoint_are_named(case, capsys):
    path = case / "run/checkpoints/last.ckpt"
    _rewrite_ckpt(path, lambda s: {**s, "state_dict": _nan_first(s["state_dict"])[0]})
    name = _nan_first(torch.load(path, weights_only=True)["state_dict"])[1]
    refused(capsys, case, RESUME, rf"last\.ckpt holds NaN or infinite values in {re.escape(name)}")
    shutil.rmtree(case / "run" / "model")
    refused(capsys, case, EXPORT, rf"tensor {re.escape(name.removeprefix('model.'))} holds NaN")


def test_a_checkpoint_whose_weights_are_a_list_is_refused(case, capsys):
    _rewrite_ckpt(case / "run/checkpoints/last.ckpt", lambda s: {**s, "state_dict": [1, 2]})
    refused(capsys, case, EXPORT, r"last\.ckpt holds no weights \(its state_dict is a list\)")


@pytest.mark.parametrize(
    "spoil, expect",
    [
        ("folder", r"metrics\.csv is a folder, not a file; move it out of the run folder"),
        ("nul", r"metrics\.csv holds binary data \(a NUL byte at offset \d+\)"),
        ("field", r"metrics\.csv cannot be read as CSV \(field larger than field limit"),
        ("huge", r"metrics\.csv is too large \(2\.0 GiB; at most 1\.0 GiB are read\)"),
    ],
)
def test_a_metrics_csv_that_cannot_be_read_back_stops_a_resume(case, capsys, spoil, expect):
    path = case / "run" / "metrics.csv"
    header = path.read_text().splitlines()[0]
    path.unlink()
    if spoil == "folder":
        path.mkdir()
    elif spoil == "huge":
        with open(path, "wb") as fh:
            fh.truncate(2 << 30)  # sparse
    else:
        row = "1,0,\0\0" if spoil == "nul" else "1,0," + "7" * 200_000
        path.write_text(f"{header}\n{row}\n")
    refused(capsys, case, RESUME, expect)


def test_a_summary_with_an_absurd_length_is_refused(case, capsys):
    path = case / "run" / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "sequence_length": 10**12}))
    refused(capsys, case, GENERATE, r"summary\.json says sequence_length 1000000000000, more "
            "than 100,000; pass --length")  # fmt: skip


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8 GB."),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    ],
    ids=["cpu", "gpu"],
)
def test_an_allocation_that_fails_is_one_line(error, tmp_path, capsys, monkeypatch):
    import dsvae.cli.train as cli_train

    def fails(args):
        raise error

    monkeypatch.setattr(cli_train, "cmd_export", fails)  # the parser is built per call
    assert main(["export", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dsvae export: error: not enough memory (")
    assert err[0].endswith("ask for smaller sizes")


def test_a_runtime_error_that_is_not_memory_keeps_its_traceback(tmp_path, monkeypatch):
    import dsvae.cli.train as cli_train

    def fails(args):
        raise RuntimeError("shape mismatch in a layer")

    monkeypatch.setattr(cli_train, "cmd_export", fails)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["export", str(tmp_path / "run")])
