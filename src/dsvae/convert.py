"""Voice conversion by swapping f (Section 4.2, Figure 6), heard through Griffin-Lim.

Both recordings are cut into consecutive 200 ms segments and encoded. The converted
sequence decodes the source's z_1:T with the target's f (the mean of E_q[f] over the
target's segments); for full q the source's z comes from q(z | f_source, x_source), as in
training (footnote 1). The decoded spectra are un-normalised with the data set's
statistics and turned into sound with :func:`dsvae.audio.griffin_lim`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dsvae import ops
from dsvae.audio import (
    SpectrogramConfig,
    SpectrumStats,
    griffin_lim,
    log_spectrogram,
    match_level,
    read_audio,
    require,
    tile,
    write_wav,
)
from dsvae.data import require_same_frames
from dsvae.data.speech import spectrogram_settings
from dsvae.errors import DataError
from dsvae.text_files import Refusal, read_json


@dataclass
class SpeechModel:
    """A trained model with the front end and statistics of the data it was trained on."""

    model: torch.nn.Module
    cfg: SpectrogramConfig
    stats: SpectrumStats

    @classmethod
    def load(cls, run: str | os.PathLike, data_dir: str | os.PathLike) -> SpeechModel:
        from dsvae.model import load_model

        data_dir = Path(data_dir)
        meta_file = next(
            (p for p in (data_dir / "meta.json", data_dir / "train" / "meta.json") if p.is_file()),
            None,
        )
        if meta_file is None:
            raise DataError(f"{data_dir} is not a speech data set (no meta.json); pass --data DIR")
        cfg, stats = spectrogram_settings(read_json(meta_file, refuse=Refusal(DataError)))
        model = load_model(run)
        require_same_frames((cfg.n_bins,), model.frame_shape, f"pass the data set of {run}")
        return cls(model, cfg, stats)

    def analyse(self, audio: np.ndarray) -> tuple[np.ndarray, int]:
        """Normalised segments (N, T, D) tiling the audio, and its number of frames."""
        return tile(self.stats.normalise(log_spectrogram(audio, self.cfg)), self.cfg)

    def read(self, path: str | os.PathLike) -> tuple[np.ndarray, int, np.ndarray, int]:
        """Audio at the model's rate (resampled if needed), its segments, frames and file rate."""
        from dsvae.audio import audio_rate

        rate = audio_rate(path)
        audio, _ = read_audio(path, self.cfg.sample_rate, resample=True)
        segments, n = self.analyse(audio)
        return audio, rate, segments, n

    def f_of(self, segments: np.ndarray) -> torch.Tensor:
        """The utterance's f: mean of E_q[f] over its segments, (F,)."""
        return ops.encode(self.model, torch.from_numpy(segments)).f.mean(0)

    def swap(self, source: np.ndarray, f: torch.Tensor) -> np.ndarray:
        """Decode the source segments' z_1:T with ``f``: normalised spectra (N, T, D)."""
        x = torch.from_numpy(source)
        z = ops.encode(self.model, x).z  # (N, T, Z)
        return ops.decode(self.model, z, f.expand(len(source), -1)).numpy()

    def to_audio(
        self,
        segments: np.ndarray,
        n: int,
        *,
        n_iter: int = 100,
        seed: int = 0,
        like: np.ndarray | None = None,
    ):
        """Normalised segments (N, T, D) -> log spectra (n, D) and Griffin-Lim audio.

        Spectra measured from each utterance's loudest bin (``cfg.dynamic_range_db``) carry
        no level; the audio then takes the RMS level of ``like`` (the source recording).
        """
        log_mag = self.stats.denormalise(segments.reshape(-1, segments.shape[-1])[:n])
        wave = griffin_lim(log_mag, self.cfg, n_iter=n_iter, seed=seed)
        if self.cfg.relative and like is not None:
            wave = match_level(wave, like)
        return log_mag, wave


def convert_pair(sm: SpeechModel, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Segments of a and b -> {a_to_b, b_to_a, a_recon, b_recon} normalised segments."""
    f_a, f_b = sm.f_of(a), sm.f_of(b)
    return {
        "a_to_b": sm.swap(a, f_b),
        "b_to_a": sm.swap(b, f_a),
        "a_recon": sm.swap(a, f_a),
        "b_recon": sm.swap(b, f_b),
    }


def spectrogram_figure(
    panels: list[tuple[str, np.ndarray]], cfg: SpectrogramConfig, path: str | os.PathLike
) -> Path:
    """Log spectra (frames, D) side by side as a PNG (Figure 6): time in s, frequency in kHz."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dsvae.viz import save_figure

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), squeeze=False)
    lo = min(float(np.percentile(p, 2)) for _, p in panels)
    hi = max(float(p.max()) for _, p in panels)
    top = cfg.sample_rate / 2000
    for ax, (title, spec) in zip(axes[0], panels, strict=True):
        seconds = spec.shape[0] * cfg.hop_length / cfg.sample_rate
        ax.imshow(
            spec.T,
            origin="lower",
            aspect="auto",
            extent=(0, seconds, top / spec.shape[1], top),
            vmin=lo,
            vmax=hi,
            cmap="magma",
        )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time (s)")
    axes[0][0].set_ylabel("frequency (kHz)")
    fig.tight_layout()
    return save_figure(fig, path)


def convert_files(
    run: str | os.PathLike,
    data_dir: str | os.PathLike,
    source: str | os.PathLike,
    target: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    n_iter: int = 100,
    seed: int = 0,
) -> list[Path]:
    """``dsvae convert``: four WAVs (at each file's own rate) and the four-panel figure."""
    sm = SpeechModel.load(run, data_dir)
    out_dir = Path(out_dir)
    audio_a, rate_a, a, n_a = sm.read(source)
    audio_b, rate_b, b, n_b = sm.read(target)
    converted = convert_pair(sm, a, b)
    lengths = {"a_to_b": n_a, "a_recon": n_a, "b_to_a": n_b, "b_recon": n_b}
    rates = {"a_to_b": rate_a, "a_recon": rate_a, "b_to_a": rate_b, "b_recon": rate_b}
    like = {"a_to_b": audio_a, "a_recon": audio_a, "b_to_a": audio_b, "b_recon": audio_b}
    names = {
        "a_to_b": "source_to_target",
        "b_to_a": "target_to_source",
        "a_recon": "source_reconstruction",
        "b_recon": "target_reconstruction",
    }
    spectra, paths = {}, []
    for key, segments in converted.items():
        spectra[key], wave = sm.to_audio(
            segments, lengths[key], n_iter=n_iter, seed=seed, like=like[key]
        )
        paths.append(
            write_wav(out_dir / f"{names[key]}.wav", _at_rate(wave, sm.cfg, rates[key]), rates[key])
        )
    original = [
        sm.stats.denormalise(x.reshape(-1, x.shape[-1])[:n]) for x, n in ((a, n_a), (b, n_b))
    ]
    panels = [
        (f"source: {Path(source).name}", original[0]),
        (f"target: {Path(target).name}", original[1]),
        ("source -> target voice", spectra["a_to_b"]),
        ("target -> source voice", spectra["b_to_a"]),
    ]
    paths.append(spectrogram_figure(panels, sm.cfg, out_dir / "conversion.png"))
    return paths


def _at_rate(wave: np.ndarray, cfg: SpectrogramConfig, rate: int) -> np.ndarray:
    if rate == cfg.sample_rate:
        return wave
    librosa = require("librosa")
    return librosa.resample(wave, orig_sr=cfg.sample_rate, target_sr=rate)
