"""A controlled many-voice speech set: spoken digits synthesised with espeak-ng.

The speech corpora open to this project have few speakers (FSDD: 6 men; Allison: one
woman, recorded in a studio), so a model trained on them cannot show whether f learns
the voice or the recording. Here every voice is a known combination of factors, as
Sprites is for video:

* an espeak-ng voice *variant* (``m1`` ... ``m7`` and ``f1`` ... ``f5`` by default: the
  formants, the breathiness and the gender espeak-ng gives it);
* a *pitch* setting (``espeak-ng -p``, 0-99), per gender, chosen so that the measured f0
  spans typical male (about 85-180 Hz) and female (about 165-255 Hz) voices;
* a *speed* setting (``espeak-ng -s``, words per minute).

Each voice says every word (the digits 0-9 and a few more) ``takes`` times, each take
with its pitch and speed jittered a little (uniform, ``pitch_jitter`` and
``speed_jitter``), drawn from ``seed``. The audio is resampled to 8 kHz, stored as WAV
under ``OUT/wav/VOICE/WORD_TAKE.wav`` and run through the front end of
``dsvae data speech`` (:func:`dsvae.data.speech.build_speech`), so the two can be mixed:
``dsvae data speech --synth OUT --fsdd ... --allison ...`` reads those WAVs again.

Splits, by voice: every voice of the variants in ``unseen`` (by default a quarter of
each gender's variants, drawn from the seed) is ``test-unseen``, so no unseen voice shares
a variant with a seen one; a ``holdout`` fraction of every other voice's takes is
``test-seen``. Per-segment labels, beside those of ``dsvae data speech`` (``speaker`` is
the voice; ``digit`` is -1 for the words that are not digits): ``voice``, ``variant``,
``pitch`` (the voice's -p setting), ``pitch_used`` (after jitter), ``speed_used``,
``word`` (indices into ``meta.json``'s ``synth`` tables) and ``f0``, the utterance's
median f0 in Hz measured with pyin (NaN where it found no voicing).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsvae.atomic import current_umask
from dsvae.data.folders import FRAMES_FILE, check_target, commit_folder
from dsvae.data.speech import SPLITS, build_speech
from dsvae.data.speech_sources import Utterance, _holdout
from dsvae.errors import DataError
from dsvae.text_files import Refusal, read_json

SAMPLE_RATE = 8000
TRIM_DB = 40  # espeak-ng pads each word with silence; cut it where 40 dB below the peak
ESPEAK = "espeak-ng"
LANGUAGE = "en-us"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
EXTRA_WORDS = ("yes", "no", "go")
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")
# espeak-ng -p settings measured to give f0 of about 88-160 Hz (male variants) and
# 160-265 Hz (female variants); see docs/results/speech.md.
MALE_PITCHES = (60, 95)
FEMALE_PITCHES = (55, 85)
SPEEDS = (140, 175)
PITCH_RANGE = (0, 99)  # espeak-ng -p
SPEED_RANGE = (80, 450)  # espeak-ng -s, words per minute
UTTERANCES_FILE = "utterances.csv"
_WORD = re.compile(r"[a-z][a-z' ]*")
_MARKERS = tuple(f"{split}/{FRAMES_FILE}" for split in SPLITS)
_INSTALL = "install espeak-ng: apt-get install espeak-ng (Debian/Ubuntu) or brew install espeak-ng"


@dataclass(frozen=True)
class SynthSpec:
    """What to synthesise; validated on creation (module docstring)."""

    male_variants: tuple[str, ...] = MALE_VARIANTS
    female_variants: tuple[str, ...] = FEMALE_VARIANTS
    male_pitches: tuple[int, ...] = MALE_PITCHES
    female_pitches: tuple[int, ...] = FEMALE_PITCHES
    speeds: tuple[int, ...] = SPEEDS
    words: tuple[str, ...] = DIGIT_WORDS + EXTRA_WORDS
    takes: int = 4
    pitch_jitter: int = 4
    speed_jitter: int = 10
    unseen: tuple[str, ...] | None = None  # variants held out; None: a quarter, by seed
    holdout: float = 0.2
    seed: int = 0
    voices: tuple[Voice, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.words or any(not w.strip() for w in self.words):
            raise DataError("the word list is empty; name at least one word, e.g. --words one,two")
        for w in self.words:
            if not _WORD.fullmatch(w):
                raise DataError(
                    f"word {w!r} must be lower-case letters (spaces and apostrophes allowed)"
                )
        if len(set(self.words)) != len(self.words):
            raise DataError(f"the word list {list(self.words)} names a word twice")
        if not self.male_variants and not self.female_variants:
            raise DataError("name at least one voice variant (--male-variants, --female-variants)")
        variants = [*self.male_variants, *self.female_variants]
        if len(set(variants)) != len(variants):
            raise DataError(f"the variants {variants} name one twice")
        for name, pitches, used in (
            ("--male-pitches", self.male_pitches, self.male_variants),
            ("--female-pitches", self.female_pitches, self.female_variants),
        ):
            _check_settings(name, pitches, self.pitch_jitter, PITCH_RANGE, bool(used))
        _check_settings("--speeds", self.speeds, self.speed_jitter, SPEED_RANGE, True)
        if self.takes < 1:
            raise DataError(f"takes must be at least 1, got {self.takes}")
        if self.pitch_jitter < 0 or self.speed_jitter < 0:
            raise DataError("the jitters must not be negative")
        if not 0.0 <= self.holdout < 1.0:
            raise DataError(f"holdout must be in [0, 1), got {self.holdout}")
        if self.unseen is not None:
            unknown = sorted(set(self.unseen) - set(variants))
            if unknown:
                raise DataError(
                    f"unseen variants {unknown} are not among the variants used {variants}"
                )
            if set(self.unseen) == set(variants):
                raise DataError("every variant is held out; leave some for training")
        object.__setattr__(self, "voices", tuple(self._voices()))

    def _voices(self) -> list[Voice]:
        out = []
        for gender, variants, pitches in (
            ("male", self.male_variants, self.male_pitches),
            ("female", self.female_variants, self.female_pitches),
        ):
            for v in variants:
                for p in pitches:
                    for s in self.speeds:
                        out.append(Voice(f"{v}-p{p}-s{s}", v, gender, p, s))
        return sorted(out, key=lambda v: v.name)

    def unseen_variants(self) -> tuple[str, ...]:
        """The held-out variants: ``unseen``, or a quarter of each gender's (at least one
        if it has two or more), drawn from ``seed``."""
        if self.unseen is not None:
            return tuple(sorted(self.unseen))
        rng = np.random.default_rng([self.seed, 1])
        out = []
        for variants in (self.male_variants, self.female_variants):
            k = max(1, round(len(variants) / 4)) if len(variants) > 1 else 0
            out += [variants[i] for i in rng.permutation(len(variants))[:k]]
        return tuple(sorted(out))


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an espeak-ng variant at one pitch and speed setting."""

    name: str
    variant: str
    gender: str
    pitch: int
    speed: int


def _check_settings(
    name: str, values: Sequence[int], jitter: int, bounds: tuple[int, int], needed: bool
) -> None:
    lo, hi = bounds
    if needed and not values:
        raise DataError(f"{name} is empty; name at least one setting")
    bad = [v for v in values if not lo + jitter <= v <= hi - jitter]
    if bad:
        raise DataError(
            f"{name} {bad} cannot be used: espeak-ng takes {lo}..{hi}, so with a jitter of "
            f"±{jitter} each setting must be in {lo + jitter}..{hi - jitter}"
        )
    if len(set(values)) != len(values):
        raise DataError(f"{name} {list(values)} names a setting twice")


# ----------------------------------------------------------------------------- espeak-ng


def espeak_variants() -> dict[str, str]:
    """The voice variants (``en-us+NAME``) this espeak-ng installation has, with the
    gender it gives each (``male`` or ``female``)."""
    out = _espeak(["--voices=variant"]).decode("utf-8", "replace")
    found = re.finditer(r"\S*/([MF])\s+\S+\s+!v/(\S+)", out)
    return {m[2]: "female" if m[1] == "F" else "male" for m in found}


def variants_by_gender(names: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split variant names into (male, female) by espeak-ng's list; unknown names are an error."""
    known = espeak_variants()
    for name in names:
        if name not in known:
            raise DataError(
                f"espeak-ng has no voice variant {name!r}; `espeak-ng --voices=variant` lists "
                f"them (e.g. {', '.join(sorted(known)[:8])})"
            )
    male = tuple(n for n in names if known[n] == "male")
    return male, tuple(n for n in names if known[n] == "female")


def _espeak(args: list[str], text: str | None = None) -> bytes:
    if shutil.which(ESPEAK) is None:
        raise DataError(f"{ESPEAK} is not installed; {_INSTALL}")
    try:
        done = subprocess.run(
            [ESPEAK, *args],
            input=None if text is None else text.encode(),
            capture_output=True,
            check=True,
            timeout=60,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        detail = getattr(err, "stderr", b"") or b""
        raise DataError(
            f"{ESPEAK} {' '.join(args)} failed: {detail.decode(errors='replace').strip() or err}"
        ) from err
    return done.stdout


def speak(text: str, variant: str, pitch: int, speed: int) -> np.ndarray:
    """espeak-ng's rendering of ``text``, mono float32 at 8 kHz."""
    from dsvae.audio import require

    sf, librosa = require("soundfile"), require("librosa")
    wav = _espeak(
        ["-v", f"{LANGUAGE}+{variant}", "-p", str(pitch), "-s", str(speed), "--stdout"], text
    )
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
    _, (start, stop) = librosa.effects.trim(audio, top_db=TRIM_DB)
    margin = SAMPLE_RATE // 20  # keep 50 ms of silence each side, as a recording would
    audio = audio[max(0, start - margin) : stop + margin]
    return (0.9 * audio / max(float(np.abs(audio).max()), 1e-6)).astype(np.float32)


# ----------------------------------------------------------------------------- building


@dataclass(frozen=True)
class _Take:
    voice: Voice
    word: str
    take: int
    pitch_used: int
    speed_used: int

    @property
    def rel(self) -> str:
        return f"{self.voice.name}/{self.word.replace(' ', '-')}_{self.take}.wav"


def plan_takes(spec: SynthSpec) -> list[_Take]:
    """Every take, with its jittered settings drawn from the seed (one stream per voice)."""
    out = []
    for voice in spec.voices:
        rng = np.random.default_rng([spec.seed, *voice.name.encode()])
        for word in spec.words:
            for k in range(spec.takes):
                dp = int(rng.integers(-spec.pitch_jitter, spec.pitch_jitter + 1))
                ds = int(rng.integers(-spec.speed_jitter, spec.speed_jitter + 1))
                out.append(_Take(voice, word, k, voice.pitch + dp, voice.speed + ds))
    return out


def _render(job: tuple[_Take, str]) -> float:
    """Synthesise one take into ``path``; return its median f0 (Hz, NaN if unvoiced)."""
    from dsvae.audio import median_f0, write_wav

    take, path = job
    audio = speak(take.word, take.voice.variant, take.pitch_used, take.speed_used)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, audio, SAMPLE_RATE)
    return median_f0(audio, SAMPLE_RATE)


def build_synth_speech(
    spec: SynthSpec,
    out_dir: str | os.PathLike,
    *,
    jobs: int = 1,
    overwrite: bool = False,
    show_progress: bool = False,
) -> dict[str, Path]:
    """Synthesise ``spec`` and write a speech data set to ``out_dir`` (module docstring).

    ``jobs`` processes synthesise and measure in parallel; the result does not depend on
    it. Everything is built in a hidden sibling folder and renamed into place at the end:
    a failure leaves nothing behind. Returns ``{split: folder}`` and ``{"wav": folder}``.
    """
    out_dir = Path(out_dir)
    check_target(out_dir, overwrite, _MARKERS, "speech data set")
    known = espeak_variants()
    unknown = [v for v in (*spec.male_variants, *spec.female_variants) if v not in known]
    if unknown:
        raise DataError(
            f"espeak-ng has no voice variant {unknown[0]!r}; `espeak-ng --voices=variant` lists "
            f"them (e.g. {', '.join(sorted(known)[:6])})"
        )
    takes = plan_takes(spec)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        staging.chmod(0o777 & ~current_umask())
        wav_dir = staging / "wav"
        f0 = _render_all(takes, wav_dir, jobs, show_progress)
        rows = _rows(spec, takes, f0)
        _write_table(wav_dir / UTTERANCES_FILE, rows)
        utterances = synth_utterances(wav_dir, spec.unseen_variants(), spec.holdout, spec.seed)
        build_speech(
            utterances,
            staging / "data",
            sample_rate=SAMPLE_RATE,
            seed=spec.seed,
            show_progress=show_progress,
            extra_meta={"synth": synth_meta(spec, rows)},
        )
        for split in SPLITS:
            if (staging / "data" / split).is_dir():
                os.replace(staging / "data" / split, staging / split)
        (staging / "data").rmdir()
        commit_folder(staging, out_dir, overwrite, _MARKERS, "speech data set")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    out = {s: out_dir / s for s in SPLITS if (out_dir / s).is_dir()}
    return {**out, "wav": out_dir / "wav"}


def _render_all(takes: list[_Take], wav_dir: Path, jobs: int, show_progress: bool) -> list[float]:
    from tqdm import tqdm

    work = [(t, str(wav_dir / t.rel)) for t in takes]
    bar = dict(total=len(work), desc="synthesise", unit="take", disable=not show_progress)
    if jobs <= 1:
        return [_render(w) for w in tqdm(work, **bar)]
    with ProcessPoolExecutor(jobs) as pool:
        return list(tqdm(pool.map(_render, work, chunksize=16), **bar))


def _rows(spec: SynthSpec, takes: list[_Take], f0: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "file": t.rel,
            "voice": t.voice.name,
            "variant": t.voice.variant,
            "gender": t.voice.gender,
            "pitch": t.voice.pitch,
            "speed": t.voice.speed,
            "pitch_used": t.pitch_used,
            "speed_used": t.speed_used,
            "word": t.word,
            "take": t.take,
            "f0": "" if not np.isfinite(f) else f"{f:.2f}",
        }
        for t, f in zip(takes, f0, strict=True)
    ]


def _write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_table(wav_dir: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of ``utterances.csv`` in a synthetic WAV folder (``OUT/wav``)."""
    path = Path(wav_dir) / UTTERANCES_FILE
    if not path.is_file():
        raise DataError(
            f"{wav_dir} is not a synthetic speech folder (no {UTTERANCES_FILE}); build one with "
            "`dsvae data synth-speech`"
        )
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def synth_meta(spec: SynthSpec, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The tables the integer labels index, and the settings, for ``meta.json``."""
    voices = sorted({r["voice"] for r in rows})
    f0 = {v: [float(r["f0"]) for r in rows if r["voice"] == v and r["f0"] != ""] for v in voices}
    return {
        "espeak_ng": _espeak(["--version"]).decode(errors="replace").strip(),
        "language": LANGUAGE,
        "voices": voices,
        "voice_f0": {v: float(np.median(x)) if x else None for v, x in f0.items()},
        "variants": sorted({r["variant"] for r in rows}),
        "words": list(spec.words),
        "unseen_variants": list(spec.unseen_variants()),
        "takes": spec.takes,
        "pitch_jitter": spec.pitch_jitter,
        "speed_jitter": spec.speed_jitter,
        "holdout": spec.holdout,
    }


def synth_utterances(
    wav_dir: str | os.PathLike,
    unseen: Sequence[str] | None = None,
    holdout: float | None = None,
    seed: int | None = None,
) -> list[Utterance]:
    """The utterances of a synthetic WAV folder (``OUT/wav``), split by voice.

    Voices of the ``unseen`` variants are test-unseen; a seeded ``holdout`` fraction of
    each other voice's takes is test-seen. None (each): as the folder was built, so that
    a mixed set keeps the synthetic set's split. Each carries the labels of the module
    docstring.
    """
    wav_dir = Path(wav_dir)
    rows = read_table(wav_dir)
    if unseen is None or holdout is None or seed is None:
        built = _built_split(wav_dir)
        unseen = built["unseen_variants"] if unseen is None else unseen
        holdout = built["holdout"] if holdout is None else holdout
        seed = built["seed"] if seed is None else seed
    variants = sorted({r["variant"] for r in rows})
    words = _ordered_words(rows)
    voices = sorted({r["voice"] for r in rows})
    out = []
    for r in rows:
        digit = DIGIT_WORDS.index(r["word"]) if r["word"] in DIGIT_WORDS else -1
        labels = (
            ("voice", voices.index(r["voice"])),
            ("variant", variants.index(r["variant"])),
            ("pitch", int(r["pitch"])),
            ("pitch_used", int(r["pitch_used"])),
            ("speed_used", int(r["speed_used"])),
            ("word", words.index(r["word"])),
            ("f0", float(r["f0"]) if r["f0"] else float("nan")),
        )
        split = "test-unseen" if r["variant"] in unseen else "train"
        name = f"synth/{r['file'][: -len('.wav')]}"
        out.append(
            Utterance(
                wav_dir / r["file"], r["voice"], name, split, "synth", digit, r["gender"], labels
            )
        )
    return _holdout(out, holdout, seed)


def _ordered_words(rows: list[dict[str, str]]) -> list[str]:
    return list(dict.fromkeys(r["word"] for r in rows))


def _built_split(wav_dir: Path) -> dict[str, Any]:
    """The unseen variants, holdout and seed a synthetic set was built with."""
    path = wav_dir.parent / "train" / "meta.json"
    if not path.is_file():
        raise DataError(f"{path} is missing: pass the folder written by `dsvae data synth-speech`")
    meta = read_json(path, refuse=Refusal(DataError))
    if not isinstance(meta, dict) or not isinstance(meta.get("synth"), dict):
        raise DataError(
            f"{path} has no synth section: pass the folder written by `dsvae data synth-speech`"
        )
    return {**meta["synth"], "seed": meta.get("seed")}
