"""Where speech comes from (Section 4.2): FSDD, the Allison voice, TIMIT, or any folder of WAVs.

Every source lists :class:`Utterance` s, each with a speaker and a split:

* ``train``: the training utterances;
* ``test-seen``: held-out utterances of the training speakers;
* ``test-unseen``: every utterance of speakers never seen in training.

Splits per source:

* FSDD: the official split (takes 0-4 of every digit are test, 5-49 train), and the
  speakers in ``unseen`` (default theo and yweweler) are held out entirely;
* TIMIT: ``TRAIN`` without the SA sentences (462 speakers), a ``holdout`` fraction of
  each speaker's utterances as test-seen (default one of eight); the 24-speaker core test
  set of ``TEST`` is test-unseen;
* Allison and folders: a seeded ``holdout`` fraction of each speaker's utterances
  (default 0.1), plus the speakers in ``unseen``.

:func:`collect_utterances` combines the sources with these defaults.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dsvae.errors import DataError
from dsvae.text_files import Refusal, read_json

FSDD_UNSEEN = ("theo", "yweweler")
FSDD_TEST_TAKES = 5  # takes 0-4 of each digit are FSDD's official test set
ALLISON_HOLDOUT = 0.1
TIMIT_HOLDOUT = 0.125  # one of eight
FOLDER_HOLDOUT = 0.1
# The TIMIT core test set: 2 male and 1 female speaker of each dialect region (24 in all).
TIMIT_CORE_TEST = frozenset(
    {"MDAB0", "MWBT0", "FELC0", "MTAS1", "MWEW0", "FPAS0", "MJMP0", "MLNT0"}
    | {"FPKT0", "MLLL0", "MTLS0", "FJLM0", "MBPM0", "MKLT0", "FNLP0", "MCMJ0"}
    | {"MJDH0", "FMGD0", "MGRT0", "MNJM0", "FDHC0", "MJLN0", "MPAM0", "FMLD0"}
)


@dataclass(frozen=True)
class Utterance:
    """One recording: where it is, who speaks, what split it belongs to."""

    path: Path
    speaker: str
    name: str  # a unique id, e.g. "fsdd/3_theo_12"
    split: str
    source: str
    digit: int = -1
    gender: str = "unknown"
    labels: tuple[tuple[str, int | float], ...] = ()  # more per-utterance labels (synth)


def _holdout(utterances: list[Utterance], fraction: float, seed: int) -> list[Utterance]:
    """Move a seeded ``fraction`` of each training speaker's utterances to test-seen."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"holdout must be in [0, 1), got {fraction}")
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(utterances):
        if u.split == "train":
            by_speaker[u.speaker].append(i)
    out = list(utterances)
    for speaker in sorted(by_speaker):
        idx = by_speaker[speaker]
        k = min(len(idx) - 1, round(len(idx) * fraction)) if fraction > 0 else 0
        if fraction > 0 and len(idx) > 1:
            k = max(1, k)
        rng = np.random.default_rng([seed, *speaker.encode()])
        for i in rng.permutation(idx)[:k]:
            out[i] = replace(out[i], split="test-seen")
    return out


def _unseen(utterances: list[Utterance], unseen: Sequence[str], where: str) -> list[Utterance]:
    speakers = {u.speaker for u in utterances}
    missing = sorted(set(unseen) - speakers)
    if missing:
        raise DataError(
            f"unseen speakers {missing} are not in {where}; its speakers are {sorted(speakers)}"
        )
    return [replace(u, split="test-unseen") if u.speaker in unseen else u for u in utterances]


def _wavs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of WAV files")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())


def fsdd_utterances(
    root: str | os.PathLike, unseen: Sequence[str] = FSDD_UNSEEN
) -> list[Utterance]:
    """FSDD ``recordings/{digit}_{speaker}_{take}.wav`` with its official split."""
    root = Path(root)
    rec = root / "recordings" if (root / "recordings").is_dir() else root
    genders = {}
    if (root / "speakers.json").is_file():
        speakers = read_json(root / "speakers.json", refuse=Refusal(DataError))
        if not isinstance(speakers, dict):
            raise DataError(f"{root / 'speakers.json'} must map each speaker to its details")
        genders = {
            k: v.get("gender", "unknown") if isinstance(v, dict) else "unknown"
            for k, v in speakers.items()
        }
    out = []
    for path in _wavs(rec):
        m = re.fullmatch(r"(\d)_([A-Za-z]+)_(\d+)", path.stem)
        if m is None:
            continue
        digit, speaker, take = int(m[1]), m[2], int(m[3])
        split = "test-seen" if take < FSDD_TEST_TAKES else "train"
        gender = genders.get(speaker, "male")  # every FSDD speaker is male
        out.append(Utterance(path, speaker, f"fsdd/{path.stem}", split, "fsdd", digit, gender))
    if not out:
        raise DataError(f"{rec} has no FSDD recordings named DIGIT_SPEAKER_TAKE.wav")
    return _unseen(out, unseen, str(rec))


def allison_utterances(
    root: str | os.PathLike, holdout: float = ALLISON_HOLDOUT, seed: int = 0
) -> list[Utterance]:
    """The Allison prompts (one female speaker); ``digits/0.wav`` ... ``digits/9.wav`` carry digits."""
    root = Path(root)
    out = []
    for path in _wavs(root):
        rel = path.relative_to(root).as_posix()
        m = re.fullmatch(r"digits/(\d)\.wav", rel, re.IGNORECASE)
        digit = int(m[1]) if m else -1
        out.append(
            Utterance(path, "allison", f"allison/{rel[:-4]}", "train", "allison", digit, "female")
        )
    if not out:
        raise DataError(f"{root} has no WAV files")
    return _holdout(out, holdout, seed)


def timit_utterances(
    root: str | os.PathLike, holdout: float = TIMIT_HOLDOUT, seed: int = 0
) -> list[Utterance]:
    """TIMIT in its standard layout ``{TRAIN,TEST}/DR*/SPEAKER/{SI,SX}*.WAV`` (SA dropped).

    Train: every ``TRAIN`` speaker (462 in the full corpus), a ``holdout`` fraction of each
    one's utterances as test-seen. Test-unseen: the 24-speaker core test set of ``TEST``.
    File names may be upper or lower case; ``SX1.WAV.wav`` copies count once.
    """
    root = Path(root)
    parts = {p.name.upper(): p for p in root.iterdir() if p.is_dir()} if root.is_dir() else {}
    if "TRAIN" not in parts or "TEST" not in parts:
        raise DataError(
            f"{root} is not a TIMIT folder: it needs TRAIN/ and TEST/ (DR1..DR8/SPEAKER/*.WAV)"
        )
    out, seen = [], set()
    for part, split in (("TRAIN", "train"), ("TEST", "test-unseen")):
        for path in _wavs(parts[part]):
            m = re.fullmatch(r"(s[ix]\d+|sa\d+)(\.wav)+", path.name, re.IGNORECASE)
            if m is None or m[1].upper().startswith("SA"):
                continue
            speaker = path.parent.name.upper()
            region = path.parent.parent.name.upper()
            if not re.fullmatch(r"DR\d", region) or (
                split == "test-unseen" and speaker not in TIMIT_CORE_TEST
            ):
                continue
            name = f"timit/{part}/{region}/{speaker}/{m[1].upper()}"
            if name in seen:
                continue
            seen.add(name)
            gender = {"M": "male", "F": "female"}.get(speaker[:1], "unknown")
            out.append(Utterance(path, speaker, name, split, "timit", -1, gender))
    if not any(u.split == "train" for u in out):
        raise DataError(
            f"{root / parts['TRAIN'].name} has no SI/SX utterances in DR*/SPEAKER/ folders"
        )
    if not any(u.split == "test-unseen" for u in out):
        raise DataError(f"{parts['TEST']} holds none of the 24 core test speakers (e.g. DR1/MDAB0)")
    return _holdout(out, holdout, seed)


def folder_utterances(
    root: str | os.PathLike,
    *,
    speaker_regex: str | None = None,
    speaker_csv: str | os.PathLike | None = None,
    holdout: float = FOLDER_HOLDOUT,
    unseen: Sequence[str] = (),
    seed: int = 0,
) -> tuple[list[Utterance], int]:
    """WAV files under ``root`` with speakers from a regex or a CSV; also the number skipped.

    ``speaker_regex`` is searched in each file's path relative to ``root`` (``/`` separated);
    the speaker is its group ``speaker`` or else group 1, and a group ``digit`` gives the
    digit. ``speaker_csv`` has a header with ``file`` and ``speaker`` columns (``file``
    relative to ``root``) and optionally ``digit`` and ``gender``. Files that the rule does
    not cover are skipped and counted; a rule that covers none is an error.
    """
    root = Path(root)
    if (speaker_regex is None) == (speaker_csv is None):
        raise DataError(
            "a folder of WAVs needs exactly one speaker rule: --speaker-regex or --speaker-csv"
        )
    files = _wavs(root)
    if not files:
        raise DataError(f"{root} has no .wav files")
    rows = (
        _regex_rows(root, files, speaker_regex) if speaker_regex else _csv_rows(root, speaker_csv)
    )
    if not rows:
        rule = (
            f"--speaker-regex {speaker_regex!r}"
            if speaker_regex
            else f"--speaker-csv {speaker_csv}"
        )
        example = files[0].relative_to(root).as_posix()
        raise DataError(
            f"the speaker rule {rule} matches none of the {len(files)} WAV files in {root} (e.g. {example!r})"
        )
    out = [
        Utterance(
            root / rel, speaker, f"folder/{rel.rsplit('.', 1)[0]}", "train", "folder", digit, gender
        )
        for rel, speaker, digit, gender in rows
    ]
    out = _holdout(_unseen(out, unseen, str(root)), holdout, seed)
    return out, len(files) - len(out)


def _regex_rows(root: Path, files: list[Path], pattern: str) -> list[tuple[str, str, int, str]]:
    try:
        rule = re.compile(pattern)
    except re.error as err:
        raise DataError(
            f"--speaker-regex {pattern!r} is not a valid regular expression: {err}"
        ) from err
    if rule.groups == 0:
        raise DataError(
            f"--speaker-regex {pattern!r} needs a group for the speaker, e.g. '^([a-z]+)_'"
        )
    names = rule.groupindex
    rows = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        m = rule.search(rel)
        if m is None:
            continue
        speaker = m["speaker"] if "speaker" in names else m[1]
        digit = m["digit"] if "digit" in names else None
        if speaker:
            rows.append((rel, speaker, int(digit) if digit and digit.isdigit() else -1, "unknown"))
    return rows


def _csv_rows(root: Path, table: str | os.PathLike) -> list[tuple[str, str, int, str]]:
    table = Path(table)
    if not table.is_file():
        raise DataError(f"speaker CSV {table} does not exist")
    with open(table, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"file", "speaker"} <= set(reader.fieldnames):
            raise DataError(
                f"{table} needs a header with the columns file,speaker (and optionally digit, gender)"
            )
        rows = []
        for i, row in enumerate(reader, start=2):
            rel, speaker = (row["file"] or "").strip(), (row["speaker"] or "").strip()
            if not rel or not speaker:
                raise DataError(f"{table} line {i}: file and speaker must not be empty")
            if not (root / rel).is_file():
                raise DataError(f"{table} line {i}: {root / rel} does not exist")
            digit = (row.get("digit") or "").strip()
            gender = (row.get("gender") or "unknown").strip().lower()
            rows.append((rel, speaker, int(digit) if digit.isdigit() else -1, gender))
    return rows


def collect_utterances(
    *,
    fsdd: str | os.PathLike | None = None,
    allison: str | os.PathLike | None = None,
    timit: str | os.PathLike | None = None,
    folder: str | os.PathLike | None = None,
    speaker_regex: str | None = None,
    speaker_csv: str | os.PathLike | None = None,
    unseen: Sequence[str] | None = None,
    holdout: float | None = None,
    seed: int = 0,
    synth: str | os.PathLike | None = None,
) -> tuple[list[Utterance], list[str]]:
    """The utterances of every source named, each with its default split; also notes to print.

    ``holdout`` (None: each source's default, ``ALLISON_HOLDOUT``, ``TIMIT_HOLDOUT``,
    ``FOLDER_HOLDOUT``) and ``unseen`` (None: ``FSDD_UNSEEN`` for FSDD, nobody for a folder)
    apply to every source that takes them. ``synth`` is a folder written by ``dsvae data
    synth-speech``, whose voices keep their own split. Messages name the ``dsvae data
    speech`` options.
    """
    utterances, notes = [], []
    if not any((fsdd, allison, timit, folder, synth)):
        raise DataError("name at least one source: --fsdd, --allison, --timit, --folder or --synth")
    if (speaker_regex or speaker_csv) and not folder:
        raise DataError("--speaker-regex and --speaker-csv apply to --folder only")
    if holdout is not None and not 0 <= holdout < 1:
        raise DataError(f"--holdout must be in [0, 1), got {holdout}")
    if unseen and fsdd and folder:
        raise DataError("--unseen applies to one of --fsdd and --folder; build them separately")
    if fsdd:
        utterances += fsdd_utterances(fsdd, FSDD_UNSEEN if unseen is None else unseen)
    if allison:
        utterances += allison_utterances(allison, _or(holdout, ALLISON_HOLDOUT), seed)
    if timit:
        utterances += timit_utterances(timit, _or(holdout, TIMIT_HOLDOUT), seed)
    if folder:
        found, skipped = folder_utterances(
            folder,
            speaker_regex=speaker_regex,
            speaker_csv=speaker_csv,
            holdout=_or(holdout, FOLDER_HOLDOUT),
            unseen=unseen or (),
            seed=seed,
        )
        utterances += found
        if skipped:
            notes.append(
                f"skipped {skipped} WAV files in {folder} that the speaker rule does not cover"
            )
    if synth:
        from dsvae.data.synth_speech import synth_utterances  # it builds on this module

        utterances += synth_utterances(Path(synth) / "wav")
    return utterances, notes


def _or(value, default):
    return default if value is None else value
