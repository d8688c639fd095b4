"""Speech data sets (Section 4.2) built from the utterances of :mod:`dsvae.data.speech_sources`.

:func:`build_speech` turns them into 200 ms segments of normalised log spectra
(``dsvae.audio``) and writes ``OUT/train``, ``OUT/test-seen`` and ``OUT/test-unseen``
(those that have utterances), each a data set folder with float32 frames (N, 20, 200)
and the labels ``speaker``, ``utterance``, ``segment``, ``digit`` (-1 where unknown),
``gender`` (0 male, 1 female, -1 unknown) and ``padded`` (silent frames appended to a
short utterance). ``meta.json`` holds the speaker and utterance names, the front-end
settings and the per-bin mean and std of the training frames. All splits are built in a
hidden folder and renamed into place together: a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dsvae.atomic import current_umask
from dsvae.audio import (
    RunningStats,
    SpectrogramConfig,
    audio_rate,
    log_spectrogram,
    read_audio,
    segment,
)
from dsvae.data.folders import FRAMES_FILE, check_target, commit_folder
from dsvae.data.speech_sources import (  # noqa: F401 - the sources, importable from here too
    ALLISON_HOLDOUT,
    FOLDER_HOLDOUT,
    FSDD_TEST_TAKES,
    FSDD_UNSEEN,
    TIMIT_CORE_TEST,
    TIMIT_HOLDOUT,
    Utterance,
    allison_utterances,
    collect_utterances,
    folder_utterances,
    fsdd_utterances,
    timit_utterances,
)
from dsvae.data.storage import DatasetWriter
from dsvae.errors import DataError

SPLITS = ("train", "test-seen", "test-unseen")
_MARKERS = tuple(f"{split}/{FRAMES_FILE}" for split in SPLITS)
GENDERS = {"male": 0, "female": 1}
LICENCES = {
    "fsdd": "CC BY-SA 4.0 (Free Spoken Digit Dataset, Zohar Jackson et al.)",
    "allison": "CC-BY-SA-3.0 (Allison Smith; Digium, Inc.)",
    "timit": "LDC User Agreement (TIMIT, LDC93S1): do not redistribute",
    "folder": "as the source audio",
    "synth": "synthesised with espeak-ng from text (no recorded voice)",
}


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
