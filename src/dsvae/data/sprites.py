"""The Sprites video data set of Li & Mandt (2018), Sec. 4.1, built from the LPC sheets.

A character is four layers over a black background: skin (``body``), pants (``legs``), top
(``torso``) and hair, each one of 6 variants, with the same golden boots (``feet/1.png``)
drawn on top: 6^4 = 1296 characters. Each performs 3 actions (walk, spellcast, slash) facing
3 directions (front, left, right), 8 frames of 64x64 RGB each, so 9 sequences per character.
The recipe is the one of the authors' scripts (GitHub ``YingzhenLi/Sprites``), written out in
the sheets folder's ``README.md``; this module follows it to the pixel:

1. character ``c`` is ``body = c // 216``, ``legs = (c // 36) % 6``, ``torso = (c // 6) % 6``,
   ``hair = c % 6``;
2. the layers are alpha-composited ("over", ``PIL.Image.alpha_composite``) onto an opaque
   black RGBA canvas in the order body, legs, torso, hair, feet; RGB is kept;
3. frame t of (action, direction) is the 64x64 tile at ``ROWS[action][direction]`` and
   column ``COLUMNS[action][t]``;
4. the split is by character: ``np.random.RandomState(423).permutation(1296)``, first 1000
   train, the other 296 test (``split_seed423.json``); 9000 and 2664 sequences.

Pixels are stored as uint8 0..255 and the model divides by 255 (:func:`prepare_frames`);
upstream stores float32 ``uint8 / 256``, so its values are ours times 255/256, a pure
rescale. Upstream's loader also shuffles each split with seed 0; we keep the unshuffled
order (nine action blocks, characters in split order) and let the data loader shuffle.

The sheets are Liberated Pixel Cup art, CC-BY-SA 3.0 / GPL 3.0: rendered frames are derived
work under the same terms. They are read from a folder beside the repository, never copied.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dsvae.atomic import remove_dirs
from dsvae.data.folders import (
    FRAMES_FILE,
    check_target,
    commit_folder,
    make_parents,
    make_sibling,
    naming_target,
)
from dsvae.data.storage import DatasetWriter
from dsvae.errors import DataError
from dsvae.text_files import Refusal, read_json

ATTRIBUTES = ("skin", "pants", "tops", "hair")
"""The four attribute slots, in label order (upstream: body, bottomwear, topwear, hair)."""
LAYERS = ("body", "legs", "torso", "hair")
"""Sheet folder of each attribute slot; also the compositing order, bottom first."""
VARIANTS = 6
"""Variants per slot: ``<folder>/0.png`` .. ``<folder>/5.png``."""
FEET = "feet/1.png"
"""The boots, the same for every character, composited last (on top)."""
ATTRIBUTE_VALUES = {
    "skin": ("light pink", "yellow-tan", "grey-blue", "pale lavender", "brown", "dark brown"),
    "pants": ("white", "golden greaves", "red", "metal", "teal", "dark formal"),
    "tops": ("maroon", "teal", "white", "steel plate", "leather", "formal shirt and tie"),
    "hair": ("green messy", "blue knot", "blonde spiky", "white bangs", "ruby red", "purple curly"),
}
"""What each variant looks like (from the sheets' README), per slot."""
NUM_CHARACTERS = VARIANTS ** len(ATTRIBUTES)  # 1296
NUM_TRAIN = 1000

ACTIONS = ("walk", "spellcast", "slash")
DIRECTIONS = ("front", "left", "right")
ACTION_NAMES = [f"{a}-{d}" for a in ACTIONS for d in DIRECTIONS]
"""The 9 action labels: label ``3 * action_index + direction_index``."""
ROWS = {"walk": (10, 9, 11), "spellcast": (2, 1, 3), "slash": (14, 13, 15)}
"""Tile row of each action for the directions front, left, right (LPC layout)."""
COLUMNS = {
    "walk": (8, 1, 2, 3, 4, 5, 6, 7),
    "spellcast": (0, 1, 2, 3, 4, 5, 4, 6),
    "slash": (0, 1, 2, 3, 4, 5, 4, 0),
}
"""Tile column of frames t = 0..7 of each action."""
LENGTH = 8
TILE = 64
SHEET_SIZE = (832, 1344)  # (width, height): 13 x 21 tiles
SPLIT_FILE = "split_seed423.json"
SPLIT_SEED = 423

SOURCE = (
    "Liberated Pixel Cup sprite sheets (Universal-LPC-spritesheet, via GitHub "
    "YingzhenLi/Sprites @ 3ce4048c), composited with the YingzhenLi/Sprites recipe; "
    "Li & Mandt 2018, Sec. 4.1"
)
LICENCE = "CC-BY-SA 3.0 / GPL 3.0 (Liberated Pixel Cup art, Universal-LPC-spritesheet)"
CREDITS = (
    "Stephen Challener (Redshrike): base male walk, slash and spellcast animations. "
    "Johannes Sjölund: male torso, plate, leather and metal pieces. Marcel van de Steeg: "
    "tanned and dark skin tones. Nila122: darkelf and darkelf2 skins. Mark Weyer: dark2. "
    "Shaun Williams: golden armour, separated by Matthew Krohn. Thane Brimhall: formal male "
    "attire. Manuel Riecke: messy1, messy2 and bangs hair. JaidynReiman: longknot and jewfro "
    "hair. Joe White: plain hair and the hair recolour script. Also Luke Mehl, Matthew Krohn, "
    "Lanea Zimmerman (Sharm), Lori Angela Nagel, Daniel Eddeland, Barbara Rivera, JRConway3 "
    "and neo4cat6. Full list: AUTHORS.txt of GitHub jrconway3/Universal-LPC-spritesheet. "
    "Please cite the Liberated Pixel Cup, the Universal-LPC-spritesheet project and "
    "Li & Mandt (2018)."
)

_FILES = [f"{folder}/{i}.png" for folder in LAYERS for i in range(VARIANTS)] + [FEET]
_EXPECTED_SIZE = "expected 832x1344 (13x21 tiles of 64x64)"
# Only tile rows 1..15 and columns 0..8 are ever cut; compositing is per pixel, so
# compositing this box gives the same pixels as compositing the whole sheet.
_USED_ROWS = range(1, 16)
_USED_COLUMNS = range(9)
_BOX = (0, TILE * _USED_ROWS[0], TILE * len(_USED_COLUMNS), TILE * (_USED_ROWS[-1] + 1))


@dataclass(frozen=True)
class SpriteSheets:
    """The 25 LPC layers (full RGBA sheets) and the character split; see :func:`load_sheets`."""

    path: Path
    layers: dict[str, tuple[Image.Image, ...]]
    """``layers[folder][variant]`` for folders in :data:`LAYERS`, and ``layers["feet"][0]``."""
    order: tuple[int, ...]
    """All 1296 character ids in split order: ``RandomState(423).permutation(1296)``."""
    train_ids: tuple[int, ...]
    test_ids: tuple[int, ...]


_MARKERS = (f"train/{FRAMES_FILE}", f"test/{FRAMES_FILE}")


def load_sheets(sheets_dir: str | os.PathLike) -> SpriteSheets:
    """Read and check the 25 layer PNGs and ``split_seed423.json`` in ``sheets_dir``.

    Raises DataError naming the file when the folder or a file is missing, a file is not a
    readable PNG, a sheet is not 832x1344, or the split is not the seed-423 permutation.
    """
    root = Path(sheets_dir)
    if not root.is_dir():
        raise DataError(
            f"LPC sprite sheets folder {root} does not exist; it must hold body/, legs/, "
            f"torso/, hair/ (0..5.png each), {FEET} and {SPLIT_FILE} (see its README.md)"
        )
    images = {name: _load_sheet(root / name) for name in _FILES}
    layers = {
        folder: tuple(images[f"{folder}/{i}.png"] for i in range(VARIANTS)) for folder in LAYERS
    }
    layers["feet"] = (images[FEET],)
    order, train_ids, test_ids = _load_split(root / SPLIT_FILE)
    return SpriteSheets(root, layers, order, train_ids, test_ids)


def _load_sheet(file: Path) -> Image.Image:
    """One layer as an RGBA image; DataError unless it is an 832x1344 PNG."""
    if not file.is_file():
        raise DataError(
            f"LPC sheet {file} is missing; the folder needs all 25 layers "
            f"({', '.join(_FILES[:2])}, ..., {FEET}); restore it from the original copy"
        )
    try:
        with Image.open(file) as image:
            if image.format != "PNG":
                raise DataError(f"LPC sheet {file} is a {image.format} file, not a PNG")
            if image.size != SHEET_SIZE:
                width, height = image.size
                raise DataError(f"LPC sheet {file} is {width}x{height}; {_EXPECTED_SIZE}")
            return image.convert("RGBA")  # palette sheets carry their transparency along
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"LPC sheet {file} is not a readable PNG ({err})") from err


def _load_split(file: Path) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``order``, ``train_ids``, ``test_ids`` from the split file, checked against seed 423."""
    if not file.is_file():
        raise DataError(f"split file {file} is missing; restore it beside the LPC sheets")
    split = read_json(file, refuse=Refusal(DataError, "split file"))
    try:
        order, train, test = (
            tuple(int(i) for i in split[key]) for key in ("order", "train_ids", "test_ids")
        )
    except (ValueError, TypeError, KeyError, OSError) as err:
        raise DataError(
            f"split file {file} is not valid: {err!r}; it must be a JSON object with integer "
            "lists 'order', 'train_ids' and 'test_ids'"
        ) from err
    if sorted(order) != list(range(NUM_CHARACTERS)):
        raise DataError(f"split file {file}: 'order' must be a permutation of 0..1295")
    if len(train) != NUM_TRAIN or len(test) != NUM_CHARACTERS - NUM_TRAIN or set(train) & set(test):
        raise DataError(
            f"split file {file}: needs 1000 train and 296 test ids, disjoint; got "
            f"{len(train)} and {len(test)} with {len(set(train) & set(test))} shared"
        )
    if train + test != order:
        raise DataError(f"split file {file}: train_ids + test_ids must equal 'order'")
    expected = np.random.RandomState(SPLIT_SEED).permutation(NUM_CHARACTERS)
    if order != tuple(expected.tolist()):
        raise DataError(
            f"split file {file}: 'order' is not np.random.RandomState(423).permutation(1296)"
        )
    return order, train, test


def character_attributes(character_id: int) -> tuple[int, int, int, int]:
    """Variant indices ``(skin, pants, tops, hair)`` of character ``character_id``."""
    c = int(character_id)
    if not 0 <= c < NUM_CHARACTERS:
        raise DataError(f"character id must be in 0..{NUM_CHARACTERS - 1}, got {character_id}")
    return c // 216, (c // 36) % 6, (c // 6) % 6, c % 6


def render_sequences(sheets: SpriteSheets, character_id: int) -> np.ndarray:
    """All 9 sequences of one character: uint8 ``(9, T=8, 64, 64, 3)`` in label order."""
    variants = character_attributes(character_id)
    canvas = Image.new("RGBA", (_BOX[2] - _BOX[0], _BOX[3] - _BOX[1]), (0, 0, 0, 255))
    stack = [sheets.layers[f][v] for f, v in zip(LAYERS, variants, strict=True)]
    for layer in [*stack, sheets.layers["feet"][0]]:
        canvas = Image.alpha_composite(canvas, layer.crop(_BOX))
    rgb = np.asarray(canvas)[..., :3]  # (15*64, 9*64, 3), the canvas is opaque
    tiles = rgb.reshape(len(_USED_ROWS), TILE, len(_USED_COLUMNS), TILE, 3).swapaxes(1, 2)
    rows = [ROWS[a][d] - _USED_ROWS[0] for a in ACTIONS for d in range(len(DIRECTIONS))]
    cols = [COLUMNS[a] for a in ACTIONS for _ in DIRECTIONS]
    return tiles[np.array(rows)[:, None], np.array(cols)]  # (9, T, H, W, 3)


def render_character(sheets: SpriteSheets, character_id: int) -> dict[tuple[str, str], np.ndarray]:
    """The 9 sequences of one character: ``{(action, direction): uint8 (8, 64, 64, 3)}``."""
    sequences = iter(render_sequences(sheets, character_id))
    return {(a, d): next(sequences) for a in ACTIONS for d in DIRECTIONS}


def _split_ids(sheets: SpriteSheets, characters: Sequence[int] | None) -> dict[str, list[int]]:
    """Train and test character ids in split order, restricted to ``characters`` if given."""
    if characters is None:
        return {"train": list(sheets.train_ids), "test": list(sheets.test_ids)}
    wanted = [int(c) for c in characters]
    if len(set(wanted)) != len(wanted) or not all(0 <= c < NUM_CHARACTERS for c in wanted):
        raise DataError(f"characters must be distinct ids in 0..1295, got {wanted}")
    keep = set(wanted)
    ids = {
        "train": [c for c in sheets.train_ids if c in keep],
        "test": [c for c in sheets.test_ids if c in keep],
    }
    if not ids["train"] or not ids["test"]:
        raise DataError(
            f"characters {wanted} give {len(ids['train'])} train and {len(ids['test'])} test "
            "characters; include at least one of each (see train_ids / test_ids)"
        )
    return ids


def preview_characters(sheets_dir: str | os.PathLike, n: int) -> list[int]:
    """The first ``n`` characters of each split, for a preview set (``characters=`` of
    :func:`build_sprites`)."""
    sheets = load_sheets(sheets_dir)
    return [*sheets.train_ids[:n], *sheets.test_ids[:n]]


def _labels(ids: list[int]) -> dict[str, np.ndarray]:
    """Labels of one split: nine action blocks, each holding ``ids`` in order."""
    character = np.tile(np.asarray(ids, dtype=np.int64), len(ACTION_NAMES))  # (N,)
    action = np.repeat(np.arange(len(ACTION_NAMES), dtype=np.int64), len(ids))  # (N,)
    c = character
    attributes = np.stack([c // 216, (c // 36) % 6, (c // 6) % 6, c % 6], axis=1)  # (N, 4)
    return {"character": character, "action": action, "attributes": attributes}


def _meta(split: str, ids: list[int], subset: bool) -> dict:
    return {
        "name": "sprites",
        "source": SOURCE,
        "seed": SPLIT_SEED,
        "licence": LICENCE,
        "credits": CREDITS,
        "split": {
            "name": split,
            "rule": "np.random.RandomState(423).permutation(1296): first 1000 characters "
            "train, the other 296 test, the same for all 9 actions (split_seed423.json)",
            "num_characters": len(ids),
            "characters": ids if subset else "all of this split",
        },
        "num_sequences": len(ids) * len(ACTION_NAMES),
        "length": LENGTH,
        "order": "nine blocks in action-label order (walk-front, walk-left, walk-right, "
        "spellcast-front, ...); characters within each block in split order",
        "pixels": "uint8 0..255, read by the model as uint8/255; upstream stores float32 "
        "uint8/256, i.e. the model's values times 255/256",
        "labels": {
            "character": "character id c = 216*skin + 36*pants + 6*tops + hair, 0..1295",
            "action": {str(i): name for i, name in enumerate(ACTION_NAMES)},
            "attributes": {"columns": list(ATTRIBUTES), "values": ATTRIBUTE_VALUES},
        },
    }


def build_sprites(
    sheets_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    show_progress: bool = False,
    characters: Sequence[int] | None = None,
) -> tuple[Path, Path]:
    """Build the Sprites data set into ``out_dir/train`` and ``out_dir/test``; return both.

    Frames are uint8 ``(N, 8, 64, 64, 3)``: 9000 train and 2664 test sequences, or 9 per
    character of ``characters`` when a subset is given (for tests and previews). Labels:
    ``character`` (N,), ``action`` (N,) in 0..8 and ``attributes`` (N, 4) [skin, pants,
    tops, hair], all int64. Characters are rendered one at a time and streamed to disk, so
    memory stays small. Both splits are built in a hidden sibling of ``out_dir`` and renamed
    into place together: a failure leaves ``out_dir`` as it was.
    """
    sheets = load_sheets(sheets_dir)
    out_dir = Path(out_dir)
    check_target(out_dir, overwrite, _MARKERS, "Sprites data set")
    ids = _split_ids(sheets, characters)
    slot = {c: (split, i) for split, split_ids in ids.items() for i, c in enumerate(split_ids)}
    created = make_parents(out_dir)
    staging = None
    try:
        staging = make_sibling(out_dir, "tmp")
        shape = (LENGTH, TILE, TILE, 3)
        with naming_target(staging, out_dir), contextlib.ExitStack() as stack:
            writers = {
                split: stack.enter_context(DatasetWriter(staging / split, 9 * len(c), shape))
                for split, c in ids.items()
            }
            bar = stack.enter_context(
                tqdm(total=len(slot), desc="sprites", unit="char", disable=not show_progress)
            )
            for c in sorted(slot):  # id order: neighbours share layers, so pages stay warm
                split, i = slot[c]
                n = len(ids[split])
                for label, sequence in enumerate(render_sequences(sheets, c)):
                    writers[split].write(label * n + i, sequence[None])
                bar.update(1)
            for split, writer in writers.items():
                writer.finish(_labels(ids[split]), _meta(split, ids[split], characters is not None))
        commit_folder(staging, out_dir, overwrite, _MARKERS, "Sprites data set")
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if not out_dir.exists():
            remove_dirs(created)
    return out_dir / "train", out_dir / "test"
