"""Measuring voice conversion (Figure 6), which the paper judged by ear.

Male FSDD digits are converted to the female Allison voice and back. For every converted
recording (Griffin-Lim audio, analysed again like any recording):

* pitch: median f0 (librosa.pyin) of source, target and conversion; the *f0 shift* is
  (f0_converted - f0_source) / (f0_target - f0_source): 0 = unchanged, 1 = the target's;
* content: a small digit classifier trained on real training spectra names the digit;
* speaker: mu_f of the conversion is compared (cosine) with the mean mu_f of the target's
  and of the source's speaker; "closer to target" counts the conversions nearer the target.

The target recording of each pair says a *different* digit than the source, so the
content has to come from the source's z.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dsvae.audio import median_f0
from dsvae.convert import SpeechModel, convert_pair, spectrogram_figure
from dsvae.data import SequenceDataset, model_frames
from dsvae.data.speech import allison_utterances, fsdd_utterances
from dsvae.errors import DataError
from dsvae.eval.report import finish_report
from dsvae.machine import one_thread


class DigitClassifier(nn.Module):
    """p(digit | x_1:T) for one segment: a GRU over the normalised spectra."""

    def __init__(self, bins: int = 200, hidden: int = 64) -> None:
        super().__init__()
        self.rnn = nn.GRU(bins, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x)  # x (B, T, D) -> h (1, B, H)
        return self.out(h[0])  # (B, 10) logits


def train_digit_classifier(
    train: SequenceDataset, *, epochs: int = 12, seed: int = 0
) -> DigitClassifier:
    """Fit the classifier on the training segments that carry a digit label.

    Training runs on one thread, so the classifier, and the shares of digits it
    recognises, do not change with the caller's thread count.
    """
    keep = np.flatnonzero(train.labels["digit"] >= 0)
    if len(keep) == 0:
        raise DataError(f"{train.path} has no digit labels; build it with --fsdd")
    x = model_frames(train.frames[keep])  # (N, T, D)
    y = torch.from_numpy(train.labels["digit"][keep])
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    clf = DigitClassifier(x.shape[-1])
    opt = torch.optim.Adam(clf.parameters(), lr=3e-3)
    with one_thread():
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=g).split(64):
                loss = nn.functional.cross_entropy(clf(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return clf.eval()


@torch.no_grad()
def predict_digit(clf: DigitClassifier, segments: np.ndarray) -> int:
    """The utterance's digit: log-probabilities summed over its segments."""
    logp = torch.log_softmax(clf(torch.from_numpy(segments)), -1).sum(0)
    return int(logp.argmax())


def measure_pair(
    sm: SpeechModel,
    clf: DigitClassifier,
    source: tuple[np.ndarray, np.ndarray, int],
    target: np.ndarray,
    f0_source: float,
    f0_target: float,
    *,
    n_iter: int = 60,
    seed: int = 0,
) -> tuple[dict, torch.Tensor, np.ndarray]:
    """Convert one pair and measure it (module docstring): the row's measurements, mu_f
    of the conversion, and its Griffin-Lim audio.

    ``source`` is (audio, segments (N, T, D), frames) and ``target`` the target's segments;
    the f0s are the source's and target's median f0 in Hz (NaN if unvoiced).
    """
    a_audio, a, n_a = source
    segs = convert_pair(sm, a, target)["a_to_b"]
    _, wave = sm.to_audio(segs, n_a, n_iter=n_iter, seed=seed, like=a_audio)
    again, _ = sm.analyse(wave)
    f0_conv = median_f0(wave, sm.cfg.sample_rate)
    row = {
        "digit": None,
        "predicted_digit": predict_digit(clf, again),
        "source_digit_predicted": predict_digit(clf, a),
        "f0_source": _finite(f0_source),
        "f0_target": _finite(f0_target),
        "f0_converted": _finite(f0_conv),
        "f0_shift": _finite((f0_conv - f0_source) / (f0_target - f0_source)),
    }
    return row, sm.f_of(again), wave


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def evaluate_conversion(
    run: str | Path,
    data_dir: str | Path,
    fsdd_dir: str | Path,
    allison_dir: str | Path,
    out_dir: str | Path,
    *,
    takes: int = 1,
    n_iter: int = 60,
    seed: int = 0,
) -> dict:
    """Convert ``takes`` test takes of every digit of every FSDD training speaker to
    Allison's voice and Allison's digits to each of those speakers; measure pitch,
    content and speaker (module docstring). Writes conversion_eval.json/.md, a figure and
    a few WAVs."""
    from dsvae.audio import write_wav

    start = time.perf_counter()
    out_dir = Path(out_dir)
    sm = SpeechModel.load(run, data_dir)
    train = SequenceDataset(Path(data_dir) / "train")
    speakers = [
        s
        for s in train.meta.get("split_speakers", [])
        if s != "allison" and s in train.meta["speakers"]
    ]
    fsdd = [
        u
        for u in fsdd_utterances(fsdd_dir, unseen=[])
        if u.speaker in speakers and int(u.name.rsplit("_", 1)[1]) < takes
    ]
    speakers = [s for s in speakers if any(u.speaker == s for u in fsdd)]  # not synth voices
    if not speakers:
        raise DataError(f"{train.path} has no FSDD training speakers to convert")
    clf = train_digit_classifier(train, seed=seed)
    allison = {u.digit: u for u in allison_utterances(allison_dir, 0.0) if u.digit >= 0}
    if len(allison) < 10:
        raise DataError(f"{allison_dir} lacks digits/0.wav ... digits/9.wav")
    cache: dict[Path, tuple] = {}

    def load(path: Path):
        if path not in cache:
            audio, _, seg, n = sm.read(path)
            cache[path] = (audio, seg, n, median_f0(audio, sm.cfg.sample_rate))
        return cache[path]

    speaker_f = {}
    for s in [*speakers, "allison"]:
        utts = [u for u in fsdd if u.speaker == s] or list(allison.values())
        speaker_f[s] = torch.stack([sm.f_of(load(u.path)[1]) for u in utts]).mean(0)
    rows = []
    for u in fsdd:
        female = allison[(u.digit + 1) % 10]  # the target says another digit
        male_by = next(v for v in fsdd if v.speaker == u.speaker and v.digit == (u.digit + 1) % 10)
        for direction, src, tgt, src_spk, tgt_spk, digit in (
            ("male->female", u, female, u.speaker, "allison", u.digit),
            ("female->male", allison[u.digit], male_by, "allison", u.speaker, u.digit),
        ):
            a_audio, a, n_a, f0_src = load(src.path)
            _, b, _, f0_tgt = load(tgt.path)
            row, f_conv, wave = measure_pair(
                sm, clf, (a_audio, a, n_a), b, f0_src, f0_tgt, n_iter=n_iter, seed=seed
            )
            row = {"direction": direction, "source": src.name, "target": tgt.name, **row}
            row["digit"] = digit
            row["cos_target_speaker"] = _cos(f_conv, speaker_f[tgt_spk])
            row["cos_source_speaker"] = _cos(f_conv, speaker_f[src_spk])
            rows.append(row)
            if len(rows) <= 2:  # one example of each direction to listen to and look at
                tag = direction.replace("->", "_to_")
                write_wav(out_dir / f"{tag}.wav", wave, sm.cfg.sample_rate)
                write_wav(out_dir / f"{tag}_source.wav", a_audio, sm.cfg.sample_rate)
    summary = _summarise(rows)
    figure = _figure(sm, fsdd[0], allison, load, out_dir / "figure6.png")
    report = {
        "summary": summary,
        "pairs": rows,
        "run": str(run),
        "data": str(data_dir),
        "speakers": speakers,
        "griffin_lim_iterations": n_iter,
        "seed": seed,
        "figure": str(figure),
    }
    markdown = conversion_markdown(summary, run)
    return finish_report(out_dir / "conversion_eval", report, markdown, start)


DIRECTIONS = ("male->female", "female->male")


def _summarise(rows: list[dict], directions=DIRECTIONS) -> dict[str, dict[str, float]]:
    """Per direction (``all``: every pair), the medians and shares of the module docstring."""
    out = {}
    for direction in directions:
        rs = [r for r in rows if direction in ("all", r["direction"])]
        if not rs:
            continue
        out[direction] = {
            "pairs": len(rs),
            "median_f0_shift": _median([r["f0_shift"] for r in rs]),
            "median_f0_source": _median([r["f0_source"] for r in rs]),
            "median_f0_target": _median([r["f0_target"] for r in rs]),
            "median_f0_converted": _median([r["f0_converted"] for r in rs]),
            "voiced_conversions": sum(r["f0_converted"] is not None for r in rs),
            "moved_half_gap": _fraction_at_least([r["f0_shift"] for r in rs], 0.5),
            "digit_accuracy": float(np.mean([r["predicted_digit"] == r["digit"] for r in rs])),
            "source_digit_accuracy": float(
                np.mean([r["source_digit_predicted"] == r["digit"] for r in rs])
            ),
            "closer_to_target": float(
                np.mean([r["cos_target_speaker"] > r["cos_source_speaker"] for r in rs])
            ),
        }
    return out


def _known(values: list[float | None]) -> np.ndarray:
    """The finite values, dropping None (pyin found nothing voiced)."""
    v = np.asarray([np.nan if x is None else x for x in values], float)
    return v[np.isfinite(v)]


def _fraction_at_least(values: list[float | None], threshold: float) -> float | None:
    """Fraction of the known values that reach ``threshold``; None if there are none."""
    v = _known(values)
    return float(np.mean(v >= threshold)) if v.size else None


def _finite(value: float) -> float | None:
    """``value``, or None (JSON null) where pyin found nothing voiced."""
    return float(value) if np.isfinite(value) else None


def _median(values: list[float | None]) -> float | None:
    """Median of the known values; None if there are none."""
    v = _known(values)
    return float(np.median(v)) if v.size else None


def _hz(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def conversion_markdown(summary: dict, run) -> str:
    lines = [
        f"# Voice conversion measured (run `{run}`)",
        "",
        "| direction | pairs | median f0 source / target / converted (Hz) | f0 shift | pairs "
        "shifted >= 0.5 | digit recognised (converted) | digit recognised (source) | closer to "
        "target speaker |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for direction, s in summary.items():
        shift = "n/a" if s["median_f0_shift"] is None else f"{s['median_f0_shift']:.2f}"
        moved = "n/a" if s["moved_half_gap"] is None else f"{100 * s['moved_half_gap']:.0f}%"
        lines.append(
            f"| {direction} | {s['pairs']} ({s['voiced_conversions']} voiced) | "
            f"{_hz(s['median_f0_source'])} / {_hz(s['median_f0_target'])}"
            f" / {_hz(s['median_f0_converted'])} | {shift} | {moved} | "
            f"{100 * s['digit_accuracy']:.1f}% | "
            f"{100 * s['source_digit_accuracy']:.1f}% | {100 * s['closer_to_target']:.1f}% |"
        )
    return "\n".join(lines)


def _figure(sm: SpeechModel, male, allison, load, path: Path) -> Path:
    """Figure 6: male, female, male -> female, female -> male (same digit)."""
    female = allison[male.digit]
    _, a, n_a, _ = load(male.path)
    _, b, n_b, _ = load(female.path)
    labels = (
        f"(a) male: {male.name.split('/')[-1]}",
        f"(b) female: {female.name.split('/')[-1]}",
        "(c) male -> female",
        "(d) female -> male",
    )
    return figure6(sm, (a, n_a), (b, n_b), labels, path)


def figure6(sm: SpeechModel, a: tuple, b: tuple, labels: tuple[str, ...], path: Path) -> Path:
    """Figure 6's four spectrograms: a, b, a in b's voice, b in a's voice.

    ``a`` and ``b`` are (segments (N, T, D), frames) of two utterances; ``labels`` the four
    panel titles.
    """
    (seg_a, n_a), (seg_b, n_b) = a, b
    conv = convert_pair(sm, seg_a, seg_b)
    spec = lambda x, n: sm.stats.denormalise(x.reshape(-1, x.shape[-1])[:n])  # noqa: E731
    shown = (
        spec(seg_a, n_a),
        spec(seg_b, n_b),
        spec(conv["a_to_b"], n_a),
        spec(conv["b_to_a"], n_b),
    )
    return spectrogram_figure(list(zip(labels, shown, strict=True)), sm.cfg, path)
