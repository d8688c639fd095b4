"""Reading the JSON and YAML files dsvae is given, with limits that a hostile file cannot pass.

Every document the project reads (a data set's ``meta.json``, a saved model's
``config.json``, a run's ``config.yaml`` and ``summary.json``, a grid, a config passed on
the command line) comes through :func:`read_json` or :func:`read_yaml`. A file that is
not what it should be gives one :class:`~dsvae.errors.DsvaeError` naming it, and the
key where there is one, instead of an exception from deep inside a parser:

* only regular files are opened, without blocking: a named pipe or ``/dev/zero`` in its
  place is refused before a byte is read;
* at most :data:`MAX_TEXT_BYTES` are read, and a larger file says how large it is;
* the text must be UTF-8; the first bad byte is named with its offset;
* values nest at most :data:`MAX_DEPTH` levels, integers have at most :data:`MAX_DIGITS`
  digits (Python refuses to read longer ones with a traceback of its own), and YAML
  aliases may not contain themselves or expand to more than :data:`MAX_YAML_NODES` values.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml

from dsvae.errors import DsvaeError

MAX_TEXT_BYTES = 16 << 20
"""The largest JSON or YAML file read (16 MiB): configs and metadata are a few kB."""
MAX_DEPTH = 100
"""How deep values may nest (a config nests four levels)."""
MAX_DIGITS = 100
"""The most digits an integer may have."""
MAX_YAML_NODES = 1_000_000
"""The most values a YAML document may hold once its aliases are expanded."""

_INT_TAG = "tag:yaml.org,2002:int"
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


class _Refused(Exception):
    """A problem found inside a document: ``problem`` at ``key`` (None: the whole file)."""

    def __init__(self, problem: str, key: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.key = problem, key


@dataclass(frozen=True)
class Refusal:
    """How a reader words its refusals: ``error("WHAT PATH PROBLEM; HINT")``, e.g.
    ``Refusal(ConfigError, "config file")`` gives "config file x.yaml is not UTF-8 text
    (...)"."""

    error: type[DsvaeError] = DsvaeError
    what: str = ""
    hint: str = ""

    def __call__(self, path: Path, problem: str) -> DsvaeError:
        where = f"{self.what} {path}" if self.what else str(path)
        return self.error(f"{where} {problem}" + (f"; {self.hint}" if self.hint else ""))


PLAIN = Refusal()
"""A DsvaeError that names the file and the problem, nothing more."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    return "not a regular file"


def describe_size(n: int) -> str:
    """``n`` bytes for a person: ``17.0 MiB``, ``3 bytes``."""
    for unit, shift in (
        ("EiB", 60),
        ("PiB", 50),
        ("TiB", 40),
        ("GiB", 30),
        ("MiB", 20),
        ("KiB", 10),
    ):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def read_bytes(
    path: str | os.PathLike,
    *,
    limit: int = MAX_TEXT_BYTES,
    refuse: Refusal = PLAIN,
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    The file is opened non-blocking and checked with ``fstat`` before it is read, so a
    named pipe that no one writes, a device or a folder is refused at once.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as err:
        raise refuse(path, "does not exist") from err
    except IsADirectoryError as err:
        raise refuse(path, "is a folder, not a file") from err
    except OSError as err:
        raise refuse(path, f"cannot be read ({err.strerror or err})") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refuse(path, f"is {_kind(info.st_mode)}")
        if info.st_size > limit:
            raise refuse(
                path,
                f"is too large ({describe_size(info.st_size)}; at most {describe_size(limit)} "
                "are read)",
            )
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)  # a file that grew since fstat is still capped
    except OSError as err:
        raise refuse(path, f"cannot be read ({err.strerror or err})") from err
    finally:
        os.close(fd)
    if len(data) > limit:
        raise refuse(path, f"is too large (over {describe_size(limit)})")
    return data


def read_text(
    path: str | os.PathLike,
    *,
    limit: int = MAX_TEXT_BYTES,
    refuse: Refusal = PLAIN,
) -> str:
    """The UTF-8 text of ``path`` (see :func:`read_bytes`); other encodings are refused,
    naming the first bad byte and its offset."""
    data = read_bytes(path, limit=limit, refuse=refuse)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        byte = data[err.start]
        raise refuse(
            Path(path), f"is not UTF-8 text (byte 0x{byte:02x} at offset {err.start})"
        ) from err


# ----------------------------------------------------------------------------- JSON


class _LongInt:
    """An integer literal with too many digits, kept as text until its key is known."""

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))


def _json_int(text: str) -> int | _LongInt:
    return _LongInt(text) if len(text.lstrip("-")) > MAX_DIGITS else int(text)


def _outer(key: str) -> str | None:
    """The start of the path to a value nested too deep (its full path is as long as it
    is deep): up to three keys, no list positions."""
    return ".".join(key.split("[", 1)[0].split(".")[:3]) or None


def _key(parent: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{parent}[{part}]"
    return f"{parent}.{part}" if parent else str(part)


def _check_json(value: Any) -> None:
    """Raise _Refused at the first value nested too deep or integer too long."""
    stack = [(value, "", 1)]
    while stack:
        node, key, depth = stack.pop()
        if isinstance(node, _LongInt):
            raise _Refused(f"has an integer of {node.digits} digits (at most {MAX_DIGITS})", key)
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise _Refused(f"nests values deeper than {MAX_DEPTH} levels", _outer(key))
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((child, _key(key, part), depth + 1) for part, child in items)


def parse_json(text: str) -> Any:
    """The JSON value of ``text``, checked like a file's; raises ValueError with the
    problem (and the key, where there is one)."""
    try:
        value = json.loads(text, parse_int=_json_int)
    except RecursionError:
        raise ValueError(f"nests values deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"is not valid JSON ({err})") from err
    try:
        _check_json(value)
    except _Refused as err:
        raise ValueError(_where(err)) from None
    return value


def _where(err: _Refused) -> str:
    return f"{err.problem} at {err.key}" if err.key else err.problem


def read_json(
    path: str | os.PathLike, *, limit: int = MAX_TEXT_BYTES, refuse: Refusal = PLAIN
) -> Any:
    """The JSON value in the file ``path``, read within the module's limits."""
    return _read_parsed(path, parse_json, limit, refuse)


def _read_parsed(path: str | os.PathLike, parse, limit: int, refuse: Refusal) -> Any:
    """``parse`` of the text of ``path``; its ValueError becomes ``refuse``'s one line."""
    text = read_text(path, limit=limit, refuse=refuse)
    try:
        return parse(text)
    except ValueError as err:
        raise refuse(Path(path), str(err)) from err


# ----------------------------------------------------------------------------- YAML


def _yaml_key(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else "?"


def _children(node: yaml.Node, key: str) -> list[tuple[yaml.Node, str]]:
    if isinstance(node, yaml.SequenceNode):
        return [(child, _key(key, i)) for i, child in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        pairs = []
        for k, v in node.value:
            name = _key(key, _yaml_key(k))
            pairs += [(k, name), (v, name)]
        return pairs
    return []


def _check_yaml(root: yaml.Node) -> None:
    """Raise _Refused for a node that contains itself, nests too deep, expands to too many
    values or holds too long an integer. One pass over the node graph: shared nodes
    (aliases) are visited once, their expanded size and depth remembered."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack = [(root, "", False)]
    while stack:
        node, key, done = stack.pop()
        ident = id(node)
        if done:
            kids = [child for child, _ in _children(node, key)]
            size[ident] = 1 + sum(size[id(c)] for c in kids)
            depth[ident] = 1 + max((depth[id(c)] for c in kids), default=0)
            open_nodes.discard(ident)
            if depth[ident] > MAX_DEPTH:
                raise _Refused(f"nests values deeper than {MAX_DEPTH} levels", _outer(key))
            if size[ident] > MAX_YAML_NODES:
                raise _Refused(
                    f"expands its aliases to more than {MAX_YAML_NODES:,} values", key or None
                )
            continue
        if ident in open_nodes:
            raise _Refused("holds an alias that contains itself", key or None)
        if ident in size:
            continue
        if node.tag == _INT_TAG and isinstance(node, yaml.ScalarNode):
            digits = sum(ch.isdigit() for ch in node.value)
            if digits > MAX_DIGITS:
                raise _Refused(f"has an integer of {digits} digits (at most {MAX_DIGITS})", key)
        open_nodes.add(ident)
        stack.append((node, key, True))
        stack.extend((child, name, False) for child, name in _children(node, key))


def _flow_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in ``text`` (brackets inside strings count too: this is
    a bound, taken before PyYAML's scanner, which slows down quadratically with it)."""
    brackets = _NOT_BRACKETS.sub("", text)
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def parse_yaml(text: str) -> Any:
    """The YAML value of ``text`` (``yaml.safe_load``, checked first); raises ValueError
    with the problem (and the key, where there is one)."""
    if _flow_depth(text) > MAX_DEPTH:
        raise ValueError(f"nests values deeper than {MAX_DEPTH} levels")
    try:
        return _load_checked(text)
    except RecursionError:
        raise ValueError(f"nests values deeper than {MAX_DEPTH} levels") from None
    except _Refused as err:
        raise ValueError(_where(err)) from None
    except yaml.YAMLError as err:
        raise ValueError(f"is not valid YAML ({' '.join(str(err).split())})") from err


def _load_checked(text: str) -> Any:
    """``yaml.safe_load(text)``, with the node graph checked before it is constructed."""
    loader = yaml.SafeLoader(text)  # this reads the text: a control character raises here
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(
    path: str | os.PathLike, *, limit: int = MAX_TEXT_BYTES, refuse: Refusal = PLAIN
) -> Any:
    """The YAML value in the file ``path``, read within the module's limits."""
    return _read_parsed(path, parse_yaml, limit, refuse)
