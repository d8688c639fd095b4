"""The ways the fuzz matrix spoils a file (tests/fuzz_artifacts.py lists the files).

A :class:`Mutation` turns the good bytes of an artifact into spoiled bytes, or into a
:class:`Symlink` or :class:`Special` (a folder, a named pipe, no file). Binary formats
are spoiled in their headers (their data may hold any byte); JSON and YAML documents get
values of the wrong type, sizes that cannot be met and nesting that never ends.
:func:`still_valid` says whether spoiled bytes still parse, checked with the format's own
library: only then may a command succeed with them.
"""

from __future__ import annotations

import io
import json
import math
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import yaml


class Artifact(Protocol):
    """What a mutation needs to know about the file it spoils."""

    id: str
    kind: str


TEXT_KINDS = ("json", "yaml", "csv")

# ----------------------------------------------------------------------------- spoils


@dataclass(frozen=True)
class Symlink:
    """The file replaced by a symbolic link to ``target`` (a device file)."""

    target: str


@dataclass(frozen=True)
class Special:
    """The file replaced by something that is not a regular file: ``folder``, ``fifo``,
    or ``missing``."""

    what: str


Spoil = bytes | Symlink | Special
Accept = frozenset[int] | dict[str, frozenset[int]] | None
REFUSE = frozenset({2})
EITHER = frozenset({0, 2})


@dataclass(frozen=True)
class Mutation:
    """One way to spoil a file. ``make(good, artifact)`` returns the spoiled content.

    ``accept`` is the set of exit statuses that hold; a dict gives them per command or per
    artifact id (2 for those it does not name); None lets :func:`still_valid` decide: 0 or
    2 if the spoiled bytes still parse, else 2.
    """

    name: str
    what: str
    kinds: tuple[str, ...] | None  # None: every kind
    make: Callable[[bytes, Artifact], Spoil]
    accept: Accept = None
    artifacts: tuple[str, ...] | None = None  # only these artifact ids


def _rng(artifact: Artifact, name: str) -> random.Random:
    return random.Random(f"{artifact.id}/{name}")  # str seeds are stable across runs


def _flip_region(good: bytes, artifact: Artifact) -> tuple[int, int]:
    """The bytes a flip targets: the header of binary files (their data may hold any
    byte), the whole of a text file."""
    kind = artifact.kind
    if kind == "npy":
        return 0, 10 + int.from_bytes(good[8:10], "little")
    if kind == "safetensors":
        return 0, 8 + int.from_bytes(good[:8], "little")
    if kind in ("npz", "ckpt"):  # the first member (npz: an array; ckpt: data.pkl)
        with zipfile.ZipFile(io.BytesIO(good)) as archive:
            info = archive.infolist()[0]
        start = info.header_offset
        return start, start + 30 + len(info.filename) + len(info.extra) + info.compress_size
    return 0, len(good)


def _flip(good: bytes, artifact: Artifact) -> bytes:
    rng = _rng(artifact, "flip")
    lo, hi = _flip_region(good, artifact)
    data = bytearray(good)
    for _ in range(8):
        data[rng.randrange(lo, hi)] ^= rng.randrange(1, 256)
    return bytes(data)


def _not_utf8(good: bytes, artifact: Artifact) -> bytes:
    """A Latin-1 e-acute (0xE9, not UTF-8) in the middle of the text."""
    middle = len(good) // 2
    return good[:middle] + b"caf\xe9" + good[middle:]


GENERIC = [
    Mutation("empty", "0 bytes", None, lambda g, a: b""),
    Mutation("head8", "only its first 8 bytes", None, lambda g, a: g[:8]),
    Mutation("half", "cut in half", None, lambda g, a: g[: len(g) // 2]),
    Mutation("flip", "8 bytes XOR-ed (seeded) in its header (binary) or anywhere (text)",
             None, _flip),
    Mutation("tail-junk", "64 random bytes appended", None,
             lambda g, a: g + _rng(a, "tail").randbytes(64)),
    Mutation("missing", "deleted", None, lambda g, a: Special("missing")),
    Mutation("dev-null", "a symlink to /dev/null", None, lambda g, a: Symlink("/dev/null")),
    Mutation("dev-zero", "a symlink to /dev/zero (never ends)", None,
             lambda g, a: Symlink("/dev/zero")),
    Mutation("dev-urandom", "a symlink to /dev/urandom (never ends)", None,
             lambda g, a: Symlink("/dev/urandom")),
    Mutation("folder", "an empty folder in its place", None, lambda g, a: Special("folder")),
    Mutation("fifo", "a named pipe that no one writes", None, lambda g, a: Special("fifo")),
    Mutation("not-utf8", "a Latin-1 byte in the middle", TEXT_KINDS, _not_utf8),
]  # fmt: skip

# ----------------------------------------------------------------------------- JSON and YAML

HUGE = "HUGE_VALUE_SENTINEL"
DEEP = "DEEP_VALUE_SENTINEL"
DIGITS = "9" * 5000
NESTING = 100_000


def _parse(good: bytes, kind: str) -> Any:
    text = good.decode("utf-8")
    return json.loads(text) if kind == "json" else yaml.safe_load(text)


def _dump(doc: Any, kind: str) -> bytes:
    """JSON or YAML text, with the sentinels replaced by a 5000-digit integer (which
    neither library can write) or by brackets nested :data:`NESTING` deep."""
    if kind == "json":
        text = json.dumps(doc, indent=2, allow_nan=True)
    else:
        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    for quote in ('"', "'", ""):
        text = text.replace(f"{quote}{HUGE}{quote}", DIGITS)
        text = text.replace(f"{quote}{DEEP}{quote}", "[" * NESTING + "]" * NESTING)
    return text.encode("utf-8")


def _set(doc: Any, key: str, value: Any) -> Any:
    """A copy of ``doc`` with the dotted ``key`` (``a.b.0``) set to ``value``."""
    doc = json.loads(json.dumps(doc))
    *parents, last = key.split(".")
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


def _with(key: str, value: Any) -> Callable[[bytes, Artifact], bytes]:
    return lambda g, a: _dump(_set(_parse(g, a.kind), key, value), a.kind)


def _top(value: Any) -> Callable[[bytes, Artifact], bytes]:
    return lambda g, a: _dump(value, a.kind)


NUMBER_KEY = {
    "meta": "frames_shape.0",
    "config": "model.z_dim",
    "run-config": "model.z_dim",
    "model-config": "model.z_dim",
    "summary": "sequence_length",
}
"""The integer that the huge-number mutations replace, per artifact."""

DOCUMENT = [
    Mutation("top-list", "a list at the top level", ("json", "yaml"), _top([1, 2])),
    Mutation("top-string", "a string at the top level", ("json", "yaml"), _top("text")),
    Mutation("top-number", "a number at the top level", ("json", "yaml"), _top(42)),
    Mutation("top-null", "null at the top level", ("json", "yaml"), _top(None)),
    Mutation("huge-int", "a 5000-digit integer for a size", ("json", "yaml"),
             lambda g, a: _with(NUMBER_KEY[a.id], HUGE)(g, a), REFUSE),
    Mutation("huge-size", "10^12 for a size", ("json", "yaml"),
             lambda g, a: _with(NUMBER_KEY[a.id], 10**12)(g, a), REFUSE),
    Mutation("deep", f"a value nested {NESTING:,} lists deep", ("json", "yaml"),
             lambda g, a: _with(NUMBER_KEY[a.id], DEEP)(g, a), REFUSE),
    Mutation("nan-literal", "NaN for a size", ("json",),
             lambda g, a: _with(NUMBER_KEY[a.id], math.nan)(g, a),
             {"summary": EITHER}),
]  # fmt: skip


def _yaml_text(text: str) -> Callable[[bytes, Artifact], bytes]:
    """The good YAML with its ``model:`` section replaced by ``text``."""

    def make(good: bytes, artifact: Artifact) -> bytes:
        doc = _parse(good, "yaml")
        train = yaml.safe_dump({"train": doc.get("train")}, sort_keys=False)
        return f"{text}\n{train}".encode()

    return make


BOMB = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
       f"*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    + ["model: *a8"]
)  # fmt: skip
"""Nine levels of nine aliases: 9^9 strings when expanded, 90 nodes as read."""

YAML_ONLY = [
    Mutation("alias-loop", "a section that contains itself (&a [*a])", ("yaml",),
             _yaml_text("model: &loop [*loop]"), REFUSE),
    Mutation("alias-bomb", "nested aliases that expand to 9^9 items", ("yaml",),
             _yaml_text(BOMB), REFUSE),
    Mutation("python-tag", "a !!python/object tag", ("yaml",),
             _yaml_text("model: !!python/object/apply:os.getcwd []"), REFUSE),
]  # fmt: skip

INNER = [
    # data set metadata: the shape that is checked against frames.npy
    Mutation("shape-null", "frames_shape: null", ("json",), _with("frames_shape", None),
             REFUSE, ("meta",)),
    Mutation("shape-number", "frames_shape: 20", ("json",), _with("frames_shape", 20),
             REFUSE, ("meta",)),
    Mutation("shape-string", "frames_shape: a string", ("json",),
             _with("frames_shape", "20x4x16x16x1"), REFUSE, ("meta",)),
    Mutation("shape-object", "frames_shape: an object", ("json",),
             _with("frames_shape", {"n": 20}), REFUSE, ("meta",)),
    Mutation("name-list", "name: a list (informative only)", ("json",), _with("name", [1]),
             EITHER, ("meta",)),
    # configs (YAML): sections and values of the wrong type
    Mutation("section-list", "model: a list", ("yaml", "json"), _with("model", [1, 2]),
             REFUSE, ("config", "run-config", "model-config")),
    Mutation("section-string", "model: a string", ("yaml", "json"), _with("model", "big"),
             REFUSE, ("config", "run-config", "model-config")),
    Mutation("value-string", "model.z_dim: a string", ("yaml", "json"),
             _with("model.z_dim", "three"), REFUSE, ("config", "run-config", "model-config")),
    Mutation("value-mapping", "model.frames.kernel: a mapping", ("yaml", "json"),
             _with("model.frames.kernel", {"a": 1}), REFUSE,
             ("config", "run-config", "model-config")),
    Mutation("train-string", "train: a string", ("yaml",), _with("train", "fast"), REFUSE,
             ("config", "run-config")),
    # saved model document
    Mutation("format-other", "format: another program's", ("json",),
             _with("format", "other-model"), REFUSE, ("model-config",)),
    Mutation("format-version", "format_version: 99", ("json",), _with("format_version", 99),
             EITHER, ("model-config",)),
    # summary
    Mutation("length-string", "sequence_length: a string", ("json",),
             _with("sequence_length", "four"), EITHER, ("summary",)),
    Mutation("length-negative", "sequence_length: -5", ("json",),
             _with("sequence_length", -5), EITHER, ("summary",)),
    Mutation("metrics-list", "metrics: a list", ("json",), _with("metrics", [1]), EITHER,
             ("summary",)),
]  # fmt: skip

# ----------------------------------------------------------------------------- binary formats


def _npy_header(good: bytes, descr: str, fortran: str, shape: str, raw: str | None = None) -> bytes:
    """A version-1 .npy header with the given fields (or ``raw`` text), then the good data."""
    data = good[10 + int.from_bytes(good[8:10], "little") :]
    text = raw or f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1") + data


def _npy(**fields: str) -> Callable[[bytes, Artifact], bytes]:
    fields = {"descr": "'|u1'", "fortran": "False", "shape": "(20, 4, 16, 16, 1)", **fields}
    return lambda g, a: _npy_header(g, **fields)


def _header_length(good: bytes, artifact: Artifact) -> bytes:
    return good[:8] + b"\xff\xff" + good[10:]


NPY = [
    Mutation("shape-huge", "header shape (10^12, 4, 16, 16, 1)", ("npy",),
             _npy(shape="(1000000000000, 4, 16, 16, 1)"), REFUSE),
    Mutation("shape-negative", "header shape (-20, 4, 16, 16, 1)", ("npy",),
             _npy(shape="(-20, 4, 16, 16, 1)"), REFUSE),
    Mutation("shape-huge-int", "a 5000-digit dim in the header", ("npy",),
             _npy(shape=f"({DIGITS}, 4, 16, 16, 1)"), REFUSE),
    Mutation("shape-deep", "a shape nested 5000 tuples deep", ("npy",),
             _npy(shape="(" * 5000 + ")" * 5000), REFUSE),
    Mutation("dtype-object", "header dtype object ('|O')", ("npy",), _npy(descr="'|O'"), REFUSE),
    Mutation("header-list", "a header that is a list, not a dict", ("npy",),
             _npy(raw="[1, 2, 3]"), REFUSE),
    Mutation("header-length", "a header length of 65535", ("npy",), _header_length, REFUSE),
    Mutation("fortran-order", "fortran_order True (still a valid array)", ("npy",),
             _npy(fortran="True"), EITHER),
]  # fmt: skip


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _npz_huge(good: bytes, artifact: Artifact) -> bytes:
    """labels.npz whose array claims shape (20, 10^12) float64 (160 TB)."""
    header = _npy_header(b"\x00" * 10, "'<f8'", "False", "(20, 1000000000000)")
    return _zip({"positions.npy": header + b"\x00" * 64})


NPZ = [
    Mutation("member-text", "a zip whose positions.npy is text", ("npz",),
             lambda g, a: _zip({"positions.npy": b"not an array"}), REFUSE),
    Mutation("member-huge", "a member that claims shape (20, 10^12)", ("npz",), _npz_huge,
             REFUSE),
]  # fmt: skip


def _safetensors_parts(good: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(good[:8], "little")
    return json.loads(good[8 : 8 + n]), good[8 + n :]


def _safetensors(header_text: str, data: bytes) -> bytes:
    raw = header_text.encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + data


def _st_header(change: Callable[[dict], str]) -> Callable[[bytes, Artifact], bytes]:
    def make(good: bytes, artifact: Artifact) -> bytes:
        header, data = _safetensors_parts(good)
        return _safetensors(change(header), data)

    return make


def _first_tensor(header: dict) -> str:
    return next(k for k in sorted(header) if k != "__metadata__")


def _huge_shape(header: dict) -> str:
    header[_first_tensor(header)]["shape"] = [10**12, 8]
    return json.dumps(header)


def _huge_offset(header: dict) -> str:
    header[_first_tensor(header)]["data_offsets"] = [0, HUGE]
    return json.dumps(header).replace(f'"{HUGE}"', DIGITS)


def _st_tensors(change: Callable[[dict], dict]) -> Callable[[bytes, Artifact], bytes]:
    def make(good: bytes, artifact: Artifact) -> bytes:
        from safetensors.torch import load, save

        tensors = change(load(good))
        return save(tensors, metadata=_safetensors_parts(good)[0].get("__metadata__"))

    return make


def _nan(tensors: dict) -> dict:
    return {k: v.float().fill_(math.nan).to(v.dtype) if v.is_floating_point() else v
            for k, v in tensors.items()}  # fmt: skip


def _drop_one(tensors: dict) -> dict:
    return {k: v for k, v in tensors.items() if k != sorted(tensors)[0]}


SAFETENSORS = [
    Mutation("header-length-huge", "a header length of 2^62", ("safetensors",),
             lambda g, a: (1 << 62).to_bytes(8, "little") + g[8:], REFUSE),
    Mutation("shape-huge", "a tensor of shape (10^12, 8) in the header", ("safetensors",),
             _st_header(_huge_shape), REFUSE),
    Mutation("offset-huge-int", "a 5000-digit data offset", ("safetensors",),
             _st_header(_huge_offset), REFUSE),
    Mutation("header-list", "a header that is a JSON list", ("safetensors",),
             _st_header(lambda h: "[]"), REFUSE),
    Mutation("header-deep", f"a header nested {NESTING:,} lists deep", ("safetensors",),
             _st_header(lambda h: "[" * NESTING + "]" * NESTING), REFUSE),
    Mutation("nan-weights", "every weight NaN (a valid file)", ("safetensors",),
             _st_tensors(_nan), REFUSE),
    Mutation("drop-tensor", "one tensor missing", ("safetensors",), _st_tensors(_drop_one),
             REFUSE),
]  # fmt: skip


def _ckpt(change: Callable[[dict], dict]) -> Callable[[bytes, Artifact], bytes]:
    def make(good: bytes, artifact: Artifact) -> bytes:
        import torch

        state = torch.load(io.BytesIO(good), map_location="cpu", weights_only=True)
        buffer = io.BytesIO()
        torch.save(change(state), buffer)
        return buffer.getvalue()

    return make


def _ckpt_nan(state: dict) -> dict:
    return {**state, "state_dict": _nan(state["state_dict"])}


EXPORT_MAY_WORK = {"export": EITHER, "resume": REFUSE}

CKPT = [
    Mutation("zip-of-text", "a zip whose data.pkl is text", ("ckpt",),
             lambda g, a: _zip({"archive/data.pkl": b"hello", "archive/version": b"3\n"}),
             REFUSE),
    Mutation("only-state-dict", "only the weights: none of Lightning's other keys", ("ckpt",),
             _ckpt(lambda s: {"state_dict": s["state_dict"]}), EXPORT_MAY_WORK),
    Mutation("no-state-dict", "every key but the weights", ("ckpt",),
             _ckpt(lambda s: {k: v for k, v in s.items() if k != "state_dict"}), REFUSE),
    Mutation("state-dict-list", "state_dict: a list", ("ckpt",),
             _ckpt(lambda s: {**s, "state_dict": [1, 2]}), REFUSE),
    Mutation("step-string", "global_step: a string", ("ckpt",),
             _ckpt(lambda s: {**s, "global_step": "two"}), EXPORT_MAY_WORK),
    Mutation("nan-weights", "every weight NaN", ("ckpt",), _ckpt(_ckpt_nan), REFUSE),
]  # fmt: skip


def _csv_rows(good: bytes, rows: list[str]) -> bytes:
    header = good.decode("utf-8").splitlines()[0]
    return ("\n".join([header, *rows]) + "\n").encode()


CSV = [
    Mutation("huge-field", "a field of 200,000 characters", ("csv",),
             lambda g, a: _csv_rows(g, ["1,0," + "7" * 200_000])),
    Mutation("step-huge-int", "a 5000-digit step", ("csv",),
             lambda g, a: _csv_rows(g, [f"{DIGITS},0,1.0"])),
    Mutation("header-only", "only the header", ("csv",), lambda g, a: _csv_rows(g, [])),
    Mutation("ragged-rows", "rows with too many and too few fields", ("csv",),
             lambda g, a: _csv_rows(g, ["1", "1,0,2,3,4,5,6,7,8,9,10,11,12", ",,,"])),
    Mutation("other-header", "a header of unknown columns", ("csv",),
             lambda g, a: b"when,what\nmonday,1\n"),
]  # fmt: skip


# ----------------------------------------------------------------------------- still valid?


def still_valid(content: bytes, artifact: Artifact, good: bytes) -> bool:
    """Whether spoiled bytes still parse (checked with the format's own library), so that a
    command may use them and succeed."""
    try:
        return _VALID[artifact.kind](content, good, artifact)
    except Exception:  # noqa: BLE001 - any failure to parse means "not valid"
        return False


def _valid_npy(content: bytes, good: bytes, artifact: Artifact) -> bool:
    array = np.load(io.BytesIO(content), allow_pickle=False)
    original = np.load(io.BytesIO(good), allow_pickle=False)
    return array.dtype == original.dtype and array.shape == original.shape


def _valid_npz(content: bytes, good: bytes, artifact: Artifact) -> bool:
    with np.load(io.BytesIO(content), allow_pickle=False) as new:
        arrays = {k: new[k] for k in new.files}
    with np.load(io.BytesIO(good), allow_pickle=False) as old:
        shapes = {k: old[k].shape for k in old.files}
    return {k: v.shape for k, v in arrays.items()} == shapes


def _valid_document(content: bytes, good: bytes, artifact: Artifact) -> bool:
    doc = _parse(content, artifact.kind)
    if artifact.id == "config":
        return doc is None or isinstance(doc, dict)  # empty: the defaults
    if artifact.id == "meta":
        old = _parse(good, "json")["frames_shape"]
        return isinstance(doc, dict) and doc.get("frames_shape", old) == old
    return isinstance(doc, dict)


def _valid_safetensors(content: bytes, good: bytes, artifact: Artifact) -> bool:
    from safetensors.torch import load

    new, old = load(content), load(good)
    return {k: v.shape for k, v in new.items()} == {k: v.shape for k, v in old.items()}


def _valid_ckpt(content: bytes, good: bytes, artifact: Artifact) -> bool:
    import torch

    new = torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    old = torch.load(io.BytesIO(good), map_location="cpu", weights_only=True)
    same_keys = new.keys() == old.keys()
    weights = {k: v.shape for k, v in new["state_dict"].items()}
    return same_keys and weights == {k: v.shape for k, v in old["state_dict"].items()}


_VALID = {
    "npy": _valid_npy,
    "npz": _valid_npz,
    "json": _valid_document,
    "yaml": _valid_document,
    "safetensors": _valid_safetensors,
    "ckpt": _valid_ckpt,
    "csv": lambda content, good, artifact: True,
}
