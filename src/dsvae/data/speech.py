"""Speech data sets (Section 4.2): FSDD, the Allison voice, TIMIT, or any folder of WAVs.

Every source lists :class:`Utterance` s, each with a speaker and a split:

* ``train``: the training utterances;
* ``test-seen``: held-out utterances of the training speakers;
* ``test-unseen``: every utterance of speakers never seen in training.

:func:`build_speech` turns them into 200 ms segments of normalised log spectra
(``dsvae.audio``) and writes ``OUT/train``, ``OUT/test-seen`` and ``OUT/test-unseen``
(those that have utterances), each a data set folder with float32 frames (N, 20, 200)
and the labels ``speaker``, ``utterance``, ``segment``, ``digit`` (-1 where unknown),
``gender`` (0 male, 1 female, -1 unknown) and ``padded`` (silent frames appended to a
short utterance). ``meta.json`` holds the speaker and utterance names, the front-end
settings and the per-bin mean and std of the training frames. All splits are built in a
hidden folder and renamed into place together: a failure leaves nothing behind.

Splits per source:

* FSDD: the official split (takes 0-4 of every digit are test, 5-49 train), and the
  speakers in ``unseen`` (default theo and yweweler) are held out entirely;
* TIMIT: ``TRAIN`` without the SA sentences (462 speakers), a ``holdout`` fraction of
  each speaker's utterances as test-seen; the 24-speaker core test set of ``TEST`` is
  test-unseen;
* Allison and folders: a seeded ``holdout`` fraction of each speaker's utterances,
  plus the speakers in ``unseen``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dsvae.audio import (
    RunningStats,
    SpectrogramConfig,
    audio_rate,
    log_spectrogram,
    read_audio,
    segment,
)
from dsvae.data.dataset import FRAMES_FILE, DatasetWriter, check_target, commit_folder
from dsvae.errors import DataError
from dsvae.io import current_umask

SPLITS = ("train", "test-seen", "test-unseen")
_MARKERS = tuple(f"{split}/{FRAMES_FILE}" for split in SPLITS)
GENDERS = {"male": 0, "female": 1}
FSDD_UNSEEN = ("theo", "yweweler")
FSDD_TEST_TAKES = 5  # takes 0-4 of each digit are FSDD's official test set
# The TIMIT core test set: 2 male and 1 female speaker of each dialect region (24 in all).
TIMIT_CORE_TEST = frozenset(
    {"MDAB0", "MWBT0", "FELC0", "MTAS1", "MWEW0", "FPAS0", "MJMP0", "MLNT0"}
    | {"FPKT0", "MLLL0", "MTLS0", "FJLM0", "MBPM0", "MKLT0", "FNLP0", "MCMJ0"}
    | {"MJDH0", "FMGD0", "MGRT0", "MNJM0", "FDHC0", "MJLN0", "MPAM0", "FMLD0"}
)
LICENCES = {
    "fsdd": "CC BY-SA 4.0 (Free Spoken Digit Dataset, Zohar Jackson et al.)",
    "allison": "CC-BY-SA-3.0 (Allison Smith; Digium, Inc.)",
    "timit": "LDC User Agreement (TIMIT, LDC93S1): do not redistribute",
    "folder": "as the source audio",
    "synth": "synthesised with espeak-ng from text (no recorded voice)",
}


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


# ----------------------------------------------------------------------------- sources


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
        genders = {
            k: v.get("gender", "unknown")
            for k, v in json.loads((root / "speakers.json").read_text()).items()
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
    root: str | os.PathLike, holdout: float = 0.1, seed: int = 0
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
    root: str | os.PathLike, holdout: float = 0.125, seed: int = 0
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
    holdout: float = 0.1,
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


# ----------------------------------------------------------------------------- building


@dataclass
class _Plan:
    utterances: list[Utterance]
    speakers: list[str]
    cfg: SpectrogramConfig
    extra: dict[str, int | float]  # extra label -> its value where an utterance lacks it


def _plan(
    utterances: Iterable[Utterance], sample_rate: int | None, dynamic_range_db: float | None
) -> _Plan:
    utterances = sorted(utterances, key=lambda u: u.name)
    if not utterances:
        raise DataError("no utterances to build a speech data set from")
    dup = [name for name, k in Counter(u.name for u in utterances).items() if k > 1]
    if dup:
        raise DataError(f"utterance {dup[0]!r} is listed twice; pass each source once")
    if not any(u.split == "train" for u in utterances):
        raise DataError(
            "no training utterances: every speaker is held out; hold out fewer speakers"
        )
    rate = sample_rate or audio_rate(utterances[0].path)
    speakers = sorted({u.speaker for u in utterances})
    cfg = SpectrogramConfig.for_rate(rate, dynamic_range_db=dynamic_range_db)
    extra: dict[str, int | float] = {}
    for u in utterances:
        for key, value in u.labels:
            if isinstance(value, float):
                extra[key] = float("nan")
            else:
                extra.setdefault(key, -1)
    return _Plan(utterances, speakers, cfg, extra)


def build_speech(
    utterances: Iterable[Utterance],
    out_dir: str | os.PathLike,
    *,
    sample_rate: int | None = None,
    resample: bool = False,
    short: str = "pad",
    dynamic_range_db: float | None = None,
    seed: int = 0,
    overwrite: bool = False,
    show_progress: bool = False,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the splits of a speech data set (module docstring); return ``{split: folder}``.

    The sample rate is ``sample_rate`` or that of the first file; other rates are refused
    unless ``resample``. ``short`` says what happens to utterances shorter than one
    200 ms segment: ``pad`` with silence or ``drop``. ``dynamic_range_db`` measures each
    utterance from its loudest bin and floors it that many dB below (see
    :mod:`dsvae.audio`); None keeps absolute levels, as the paper does. Every file is read
    twice (first for the statistics, then to write), so memory stays small.
    """
    plan = _plan(utterances, sample_rate, dynamic_range_db)
    out_dir = Path(out_dir)
    check_target(out_dir, overwrite, _MARKERS, "speech data set")
    counts, stats, dropped = _first_pass(plan, resample, short, show_progress)
    splits = [s for s in SPLITS if counts[s] > 0]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        staging.chmod(0o777 & ~current_umask())
        shape = (plan.cfg.segment_frames, plan.cfg.n_bins)
        with contextlib.ExitStack() as stack:
            writers = {
                s: stack.enter_context(DatasetWriter(staging / s, counts[s], shape, np.float32))
                for s in splits
            }
            labels = {s: defaultdict(list) for s in splits}
            names: dict[str, list[str]] = {s: [] for s in splits}
            filled = dict.fromkeys(splits, 0)
            for u, seg in _segments(plan, resample, short, show_progress, "write"):
                if len(seg.frames) == 0:
                    continue
                s, n = u.split, len(seg.frames)
                writers[s].write(filled[s], stats.normalise(seg.frames))
                filled[s] += n
                lab = labels[s]
                lab["speaker"] += [plan.speakers.index(u.speaker)] * n
                lab["utterance"] += [len(names[s])] * n
                lab["segment"] += list(range(n))
                lab["digit"] += [u.digit] * n
                lab["gender"] += [GENDERS.get(u.gender, -1)] * n
                lab["padded"] += seg.padded.tolist()
                mine = dict(u.labels)
                for key, missing in plan.extra.items():
                    lab[key] += [mine.get(key, missing)] * n
                names[s].append(u.name)
            for s in splits:
                meta = _meta(plan, s, names[s], stats, short, dropped, seed, extra_meta)
                arrays = {k: _label_array(v, k in plan.extra) for k, v in labels[s].items()}
                writers[s].finish(arrays, meta)
        commit_folder(staging, out_dir, overwrite, _MARKERS, "speech data set")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {s: out_dir / s for s in splits}


def _label_array(values: list, extra: bool) -> np.ndarray:
    """int64 labels; an extra label with a float in it (e.g. f0 in Hz) stays float64."""
    if extra and any(isinstance(v, float) for v in values):
        return np.asarray(values, np.float64)
    return np.asarray(values, np.int64)


def _segments(plan: _Plan, resample: bool, short: str, show_progress: bool, desc: str):
    for u in tqdm(plan.utterances, desc=desc, unit="file", disable=not show_progress):
        audio, _ = read_audio(u.path, plan.cfg.sample_rate, resample=resample)
        yield u, segment(log_spectrogram(audio, plan.cfg), plan.cfg, short)


def _first_pass(plan: _Plan, resample: bool, short: str, show_progress: bool):
    counts: Counter[str] = Counter()
    running = RunningStats(plan.cfg.n_bins)
    dropped = 0
    for u, seg in _segments(plan, resample, short, show_progress, "read"):
        counts[u.split] += len(seg.frames)
        dropped += len(seg.frames) == 0
        if u.split == "train":
            for frames, pad in zip(seg.frames, seg.padded, strict=True):
                running.add(frames[: len(frames) - pad])  # padding is not speech
    if counts["train"] == 0:
        raise DataError("every training utterance is shorter than one segment; use short='pad'")
    return counts, running.finish(), dropped


def _meta(
    plan: _Plan, split: str, names: list[str], stats, short: str, dropped: int, seed: int, extra
) -> dict:
    sources = sorted({u.source for u in plan.utterances})
    genders = {u.speaker: u.gender for u in plan.utterances}
    in_split = sorted({u.speaker for u in plan.utterances if u.split == split})
    return {
        "name": f"speech-{split}",
        "source": "+".join(sources),
        "seed": seed,
        "licence": "; ".join(LICENCES[s] for s in sources),
        "split": split,
        "kind": "speech",
        "speakers": plan.speakers,
        "speaker_genders": [genders[s] for s in plan.speakers],
        "split_speakers": in_split,
        "utterances": names,
        "short_utterances": short,
        "dropped_utterances": dropped,
        "spectrogram": {**plan.cfg.to_dict(), **stats.to_dict()},
        **(extra or {}),
    }


def spectrogram_settings(meta: dict[str, Any]):
    """The front end and the statistics stored in a speech data set's ``meta.json``."""
    from dsvae.audio import SpectrumStats

    if "spectrogram" not in meta:
        raise DataError(
            "this data set has no spectrogram settings: build it with `dsvae data speech`"
        )
    spec = meta["spectrogram"]
    return SpectrogramConfig.from_dict(spec), SpectrumStats.from_dict(spec)


def speaker_levels(data_dir: str | os.PathLike, quiet: float = 0.1) -> list[dict[str, Any]]:
    """Recording level and background of each speaker in one split of a speech data set.

    ``background`` is the mean log magnitude (nats, averaged over the bins) of the speaker's
    quietest ``quiet`` fraction of frames; ``span`` is, per utterance, its loudest bin less
    its own background, averaged over the speaker's utterances. Padding frames are left
    out. On corpora where each speaker was recorded in one place, the background alone can
    tell the speakers apart (see ``--dynamic-range``).
    """
    from dsvae.data import SequenceDataset

    ds = SequenceDataset(data_dir)
    _, stats = spectrogram_settings(ds.meta)
    frames = stats.denormalise(np.asarray(ds.frames))  # (N, T, D) log magnitudes
    lab = ds.labels
    t = frames.shape[1]
    speech_frame = np.arange(t)[None, :] < (t - lab["padded"])[:, None]  # (N, T)
    energy = frames.mean(-1)  # (N, T)

    def background(rows: np.ndarray) -> float:
        e = energy[rows][speech_frame[rows]]
        return float(e[e <= np.quantile(e, quiet)].mean())

    out = []
    for s, name in enumerate(ds.meta["speakers"]):
        mine = lab["speaker"] == s
        if not mine.any():
            continue
        spans = []
        for u in np.unique(lab["utterance"][mine]):
            one = lab["utterance"] == u
            spans.append(float(frames[one].max()) - background(one))
        out.append(
            {
                "speaker": name,
                "utterances": len(spans),
                "background": background(mine),
                "span": float(np.mean(spans)),
            }
        )
    return out
