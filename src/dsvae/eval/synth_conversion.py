"""Voice conversion measured on the synthetic many-voice set (``dsvae data synth-speech``).

The measurements are those of :mod:`dsvae.eval.conversion` (f0 shift, digit kept,
speaker changed); only the pairs differ. The voices of one test split are sorted by
their median f0 (pyin, measured when the set was built) and voice i of n is paired with
voice i + n/2 (mod n): every voice is a source once and a target once, and the pairs span
the f0 range, low to high and high to low. Each digit a source voice says in the split is
converted to its partner's voice, with a target utterance of a *different* word; the
target's f0 is its known label.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from dsvae.audio import write_wav
from dsvae.convert import SpeechModel
from dsvae.data import SequenceDataset
from dsvae.errors import DataError
from dsvae.eval.conversion import (
    _cos,
    _summarise,
    conversion_markdown,
    figure6,
    measure_pair,
    train_digit_classifier,
)
from dsvae.eval.report import finish_report

SYNTH_DIRECTIONS = ("male->female", "female->male", "male->male", "female->female", "all")


def split_utterances(dataset: SequenceDataset) -> list[dict]:
    """One record per utterance of a synthetic split: name, voice, gender, digit, word, f0."""
    lab, meta = dataset.labels, dataset.meta
    if "synth" not in meta or "f0" not in lab:
        raise DataError(
            f"{dataset.path} is not a synthetic speech split; build one with "
            "`dsvae data synth-speech`, or pass --fsdd and --allison for the real pairs"
        )
    _, first = np.unique(lab["utterance"], return_index=True)
    genders = dict(zip(meta["speakers"], meta["speaker_genders"], strict=True))
    out = []
    for i in first:
        voice = meta["speakers"][lab["speaker"][i]]
        out.append(
            {
                "name": meta["utterances"][lab["utterance"][i]],
                "voice": voice,
                "gender": genders[voice],
                "digit": int(lab["digit"][i]),
                "word": int(lab["word"][i]),
                "f0": float(lab["f0"][i]),
            }
        )
    return out


def synth_pairs(utterances: list[dict], per_voice: int = 10, seed: int = 0):
    """(source, target) utterance records across the f0 range (module docstring)."""
    voices: dict[str, list[dict]] = {}
    for u in utterances:
        voices.setdefault(u["voice"], []).append(u)
    if len(voices) < 2:
        raise DataError("the split has fewer than two voices; conversion needs two")
    order = sorted(voices, key=lambda v: (np.nanmedian([u["f0"] for u in voices[v]]), v))
    rng = np.random.default_rng(seed)
    pairs = []
    n = len(order)
    for i, src_voice in enumerate(order):
        tgt_voice = order[(i + n // 2) % n]
        sources = sorted(
            (u for u in voices[src_voice] if u["digit"] >= 0 and np.isfinite(u["f0"])),
            key=lambda u: u["name"],
        )
        if len(sources) > per_voice:
            sources = [sources[k] for k in sorted(rng.permutation(len(sources))[:per_voice])]
        for src in sources:
            targets = [
                u for u in voices[tgt_voice] if u["word"] != src["word"] and np.isfinite(u["f0"])
            ]
            if targets:
                pairs.append((src, targets[int(rng.integers(len(targets)))]))
    if not pairs:
        raise DataError("no conversion pairs: the split's voices say no digits with voicing")
    return pairs


def evaluate_synth_conversion(
    run: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str = "test-seen",
    per_voice: int = 10,
    n_iter: int = 60,
    seed: int = 0,
) -> dict:
    """Convert pairs of ``split`` voices across the f0 range; measure pitch, content and
    speaker; write conversion_eval.json/.md, figure6.png and example WAVs."""
    start = time.perf_counter()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not (data_dir / split).is_dir():
        raise DataError(f"{data_dir} has no {split}/ split")
    sm = SpeechModel.load(run, data_dir)
    test = SequenceDataset(data_dir / split)
    utterances = split_utterances(test)
    pairs = synth_pairs(utterances, per_voice, seed)
    clf = train_digit_classifier(SequenceDataset(data_dir / "train"), seed=seed)
    wav = data_dir / "wav"
    cache: dict[str, tuple] = {}

    def load(u: dict):
        if u["name"] not in cache:
            audio, _, seg, n = sm.read(wav / (u["name"].split("/", 1)[1] + ".wav"))
            cache[u["name"]] = (audio, seg, n)
        return cache[u["name"]]

    voices = sorted({u["voice"] for pair in pairs for u in pair})
    voice_f = {
        v: torch.stack([sm.f_of(load(u)[1]) for u in utterances if u["voice"] == v]).mean(0)
        for v in voices
    }
    rows, examples = [], set()
    for src, tgt in pairs:
        a_audio, a, n_a = load(src)
        row, f_conv, wave = measure_pair(
            sm, clf, (a_audio, a, n_a), load(tgt)[1], src["f0"], tgt["f0"], n_iter=n_iter, seed=seed
        )
        direction = f"{src['gender']}->{tgt['gender']}"
        row = {"direction": direction, "source": src["name"], "target": tgt["name"], **row}
        row["digit"] = src["digit"]
        row["cos_target_speaker"] = _cos(f_conv, voice_f[tgt["voice"]])
        row["cos_source_speaker"] = _cos(f_conv, voice_f[src["voice"]])
        rows.append(row)
        if direction in ("male->female", "female->male") and direction not in examples:
            examples.add(direction)  # one example of each direction to listen to
            tag = direction.replace("->", "_to_")
            write_wav(out_dir / f"{tag}.wav", wave, sm.cfg.sample_rate)
            write_wav(out_dir / f"{tag}_source.wav", a_audio, sm.cfg.sample_rate)
            write_wav(out_dir / f"{tag}_target.wav", load(tgt)[0], sm.cfg.sample_rate)
    summary = _summarise(rows, SYNTH_DIRECTIONS)
    figure = _figure(sm, pairs, load, out_dir / "figure6.png")
    report = {
        "summary": summary,
        "pairs": rows,
        "run": str(run),
        "data": str(data_dir),
        "split": split,
        "voices": voices,
        "griffin_lim_iterations": n_iter,
        "seed": seed,
        "figure": str(figure),
    }
    markdown = conversion_markdown(summary, run)
    return finish_report(out_dir / "conversion_eval", report, markdown, start)


def _figure(sm: SpeechModel, pairs, load, path: Path) -> Path:
    """Figure 6 on the synthetic voices: the lowest- and highest-pitched voices' first
    pair, and each converted to the other's voice."""
    lo = min(pairs, key=lambda p: p[0]["f0"])[0]
    hi = max(pairs, key=lambda p: p[0]["f0"])[0]
    _, a, n_a = load(lo)
    _, b, n_b = load(hi)
    labels = (
        f"(a) {lo['voice']} ({lo['f0']:.0f} Hz)",
        f"(b) {hi['voice']} ({hi['f0']:.0f} Hz)",
        "(c) a in the voice of b",
        "(d) b in the voice of a",
    )
    return figure6(sm, (a, n_a), (b, n_b), labels, path)
