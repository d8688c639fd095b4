"""Speech front end (Section 4.2, following Hsu et al. 2017): WAV in, log spectra out, and back.

The paper splits speech into 200 ms segments of 200-dimensional log-magnitude spectra
computed every 10 ms, so T = 20. Hsu et al. use, at 16 kHz, 25 ms frames (400 samples)
with a 10 ms hop, a 400-point FFT (201 bins, the DC bin dropped) and a square-root Hann
window. :meth:`SpectrogramConfig.for_rate` keeps those durations at any rate up to 16 kHz
and always uses a 400-point FFT, so that there are 200 bins after dropping DC:

=========  ==========  =====  =====  =====================================
rate       window      hop    FFT    bins
=========  ==========  =====  =====  =====================================
16,000 Hz  400 (25 ms) 160    400    200 bins of 40 Hz, 40 Hz - 8 kHz
 8,000 Hz  200 (25 ms)  80    400    200 bins of 20 Hz, 20 Hz - 4 kHz
=========  ==========  =====  =====  =====================================

At 8 kHz the 25 ms window is zero-padded to 400 points: the time resolution is the
paper's and the 200 bins sample the same spectrum twice as finely (interpolated, not
more resolved). Magnitudes are floored at ``log_floor`` before the log, so silence is
finite.

``dynamic_range_db`` (off by default, as in the paper) measures each utterance's log
magnitudes from its own loudest bin and floors them ``dynamic_range_db`` dB below it, like
``librosa.amplitude_to_db(ref=np.max, top_db=...)``. Recording level and background noise
below that floor then say nothing about who recorded the utterance; on corpora where each
speaker was recorded in one place (FSDD, Allison) the channel otherwise identifies the
speaker. Converted audio takes its level from the source recording.

One global mean and standard deviation per bin, taken over the training frames, is stored
with the data set (:class:`SpectrumStats`) so that spectra can be turned back into sound
with :func:`griffin_lim`.

Audio is read with soundfile (WAV, and NIST SPHERE for TIMIT); resampling uses librosa.
Both come with ``pip install dsvae[audio]``. torchaudio is not used.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsvae.atomic import atomic_path
from dsvae.errors import DataError

N_FFT = 400
N_BINS = N_FFT // 2  # 201 bins less DC
SEGMENT_FRAMES = 20  # 200 ms at a 10 ms hop
MAX_RATE = 16_000
SILENCE_PEAK = 1e-4  # a clip whose peak is below this is treated as silent
_INSTALL = "install the audio extra: pip install 'dsvae[audio]'"


def require(module: str):
    """Import an optional audio dependency (soundfile, librosa) or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise DataError(f"speech needs the Python package {module!r}; {_INSTALL}") from err


@dataclass(frozen=True)
class SpectrogramConfig:
    """Front-end settings; see the module docstring for the values at 8 and 16 kHz."""

    sample_rate: int
    win_length: int
    hop_length: int
    n_fft: int = N_FFT
    log_floor: float = 1e-4
    segment_frames: int = SEGMENT_FRAMES
    dynamic_range_db: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.win_length <= self.n_fft:
            raise DataError(
                f"the window ({self.win_length} samples) must fit the {self.n_fft}-point FFT; "
                f"resample the audio to {MAX_RATE} Hz or less"
            )
        if self.hop_length < 1 or self.log_floor <= 0 or self.segment_frames < 1:
            raise DataError(f"invalid spectrogram settings {self}")
        if self.dynamic_range_db is not None and not 0 < self.dynamic_range_db < 200:
            raise DataError(
                f"the dynamic range must be between 0 and 200 dB, got {self.dynamic_range_db}"
            )

    @classmethod
    def for_rate(cls, sample_rate: int, **kwargs: Any) -> SpectrogramConfig:
        """25 ms sqrt-Hann frames every 10 ms with a 400-point FFT, at ``sample_rate``."""
        if sample_rate > MAX_RATE or sample_rate % 100 != 0 or sample_rate < 1000:
            raise DataError(
                f"the speech front end needs a sample rate that is a multiple of 100 Hz up to "
                f"{MAX_RATE} Hz (a 10 ms hop, 25 ms frames in a 400-point FFT), got "
                f"{sample_rate} Hz; pass --sample-rate 16000 or 8000 with --resample"
            )
        return cls(sample_rate, round(sample_rate * 0.025), sample_rate // 100, **kwargs)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2

    @property
    def relative(self) -> bool:
        """Whether spectra are measured from each utterance's loudest bin."""
        return self.dynamic_range_db is not None

    @property
    def silence(self) -> float:
        """The log magnitude of silence: the floor, used to pad short utterances."""
        if self.relative:
            return -self.dynamic_range_db * np.log(10.0) / 20.0
        return float(np.log(self.log_floor))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpectrogramConfig:
        keys = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in keys})


def window(cfg: SpectrogramConfig) -> torch.Tensor:
    """Square-root periodic Hann window of ``win_length`` samples."""
    return torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64).sqrt()


# ----------------------------------------------------------------------------- reading


def read_audio(
    path: str | os.PathLike, sample_rate: int | None = None, *, resample: bool = False
) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and their rate; raise DataError on anything unusable.

    Refuses files soundfile cannot read, more than one channel, empty or silent clips,
    NaN or infinite samples (a float WAV can hold them), and
    (unless ``resample``) a rate other than ``sample_rate``; with ``resample`` the audio is
    resampled to ``sample_rate`` (librosa, soxr high quality).
    """
    sf = require("soundfile")
    path = Path(path)
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as err:  # soundfile.LibsndfileError is a RuntimeError
        raise DataError(
            f"{path} is not a readable audio file ({err}); remove or replace it"
        ) from err
    if audio.shape[1] != 1:
        raise DataError(
            f"{path} has {audio.shape[1]} channels; speech must be mono: mix it down first "
            f"(e.g. `sox in.wav -c 1 out.wav`)"
        )
    audio = audio[:, 0]
    if audio.size == 0:
        raise DataError(f"{path} holds no samples; remove it")
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise DataError(f"{path} has {bad} NaN or infinite samples; repair or remove it")
    if sample_rate is not None and rate != sample_rate:
        if not resample:
            raise DataError(
                f"{path} is sampled at {rate} Hz but the data set uses {sample_rate} Hz; "
                "pass --resample to resample it, or --sample-rate to choose the rate"
            )
        librosa = require("librosa")
        audio = librosa.resample(audio, orig_sr=rate, target_sr=sample_rate).astype(np.float32)
        rate = sample_rate
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise DataError(f"{path} is silent (peak below {SILENCE_PEAK}); remove it")
    return audio, int(rate)


def audio_rate(path: str | os.PathLike) -> int:
    """The sample rate in a file's header (DataError if it cannot be read)."""
    sf = require("soundfile")
    try:
        return int(sf.info(str(path)).samplerate)
    except RuntimeError as err:
        raise DataError(
            f"{path} is not a readable audio file ({err}); remove or replace it"
        ) from err


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Write 16-bit PCM mono WAV atomically (peak-limited to [-1, 1]); return the path."""
    sf = require("soundfile")
    path = Path(path)
    audio = np.clip(np.nan_to_num(np.asarray(audio, dtype=np.float32)), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, sample_rate, format="WAV", subtype="PCM_16")
    return path


# ----------------------------------------------------------------------------- spectra


def log_spectrogram(audio: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """Log-magnitude spectra (frames, 200), one every hop, DC dropped, floored at ``log_floor``.

    Frame i is centred on sample ``i * hop`` (zero padding at both ends), so a clip of n
    samples gives ``1 + n // hop`` frames. With ``cfg.dynamic_range_db`` the spectra are
    shifted so that the loudest bin is 0 and floored at ``cfg.silence``.
    """
    x = torch.as_tensor(np.asarray(audio, dtype=np.float64))
    spec = torch.stft(
        x,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=window(cfg),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )  # (n_fft/2 + 1, frames)
    mag = spec.abs()[1:].T.numpy()  # (frames, 200): DC dropped
    log_mag = np.log(np.maximum(mag, cfg.log_floor))
    if cfg.relative:
        log_mag = np.maximum(log_mag - log_mag.max(), cfg.silence)
    return log_mag.astype(np.float32)


@dataclass
class Segments:
    """Fixed-length pieces of one utterance's spectra."""

    frames: np.ndarray  # (N, T, D)
    starts: np.ndarray  # (N,) first frame of each segment in the utterance
    padded: np.ndarray  # (N,) frames of silence appended to reach T


def segment(spec: np.ndarray, cfg: SpectrogramConfig, short: str = "pad") -> Segments:
    """Cut spectra (frames, D) into segments of T = ``segment_frames`` frames.

    Segments start every T frames; when frames are left over at the end, one more
    segment covers the last T frames (it overlaps its neighbour), so no speech is lost
    and nothing is padded. An utterance shorter than T frames is padded at the end with
    silence (the log floor) when ``short="pad"``, or gives no segment when ``"drop"``.
    """
    if short not in ("pad", "drop"):
        raise DataError(f"short must be 'pad' or 'drop', got {short!r}")
    t, n = cfg.segment_frames, spec.shape[0]
    if n < t:
        if short == "drop":
            return Segments(
                np.zeros((0, t, spec.shape[1]), np.float32), np.zeros(0, int), np.zeros(0, int)
            )
        pad = np.full((t - n, spec.shape[1]), cfg.silence, np.float32)
        return Segments(np.concatenate([spec, pad])[None], np.array([0]), np.array([t - n]))
    starts = list(range(0, n - t + 1, t))
    if starts[-1] + t < n:
        starts.append(n - t)
    frames = np.stack([spec[s : s + t] for s in starts])  # (N, T, D)
    return Segments(frames.astype(np.float32), np.array(starts), np.zeros(len(starts), int))


def tile(spec: np.ndarray, cfg: SpectrogramConfig) -> tuple[np.ndarray, int]:
    """Non-overlapping segments (N, T, D) covering ``spec``, the last padded with silence.

    Returns the segments and the original number of frames, to undo with
    ``segments.reshape(-1, D)[:n]``. Used to convert whole utterances.
    """
    t, n = cfg.segment_frames, spec.shape[0]
    total = -(-n // t) * t
    pad = np.full((total - n, spec.shape[1]), cfg.silence, np.float32)
    return np.concatenate([spec, pad]).reshape(-1, t, spec.shape[1]), n


@dataclass
class SpectrumStats:
    """Global per-bin mean and standard deviation of the training log spectra."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)

    def normalise(self, spec: np.ndarray) -> np.ndarray:
        return ((spec - self.mean) / self.std).astype(np.float32)

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x) * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpectrumStats:
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32))


class RunningStats:
    """Per-bin sums over frames, for :class:`SpectrumStats` in one pass (float64)."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.s = np.zeros(dim)
        self.ss = np.zeros(dim)

    def add(self, frames: np.ndarray) -> None:
        f = np.asarray(frames, np.float64).reshape(-1, self.s.shape[0])
        self.n += f.shape[0]
        self.s += f.sum(0)
        self.ss += (f * f).sum(0)

    def finish(self, min_std: float = 1e-3) -> SpectrumStats:
        if self.n == 0:
            raise DataError("no training frames to take the spectrum statistics from")
        mean = self.s / self.n
        std = np.sqrt(np.maximum(self.ss / self.n - mean * mean, 0.0))
        return SpectrumStats(mean.astype(np.float32), np.maximum(std, min_std).astype(np.float32))


# ----------------------------------------------------------------------------- back to sound


def griffin_lim(
    log_mag: np.ndarray, cfg: SpectrogramConfig, *, n_iter: int = 100, seed: int = 0
) -> np.ndarray:
    """Waveform from log magnitudes (frames, 200) by fast Griffin-Lim (momentum 0.99).

    Griffin & Lim (1984) with the momentum of Perraudin et al. (2013), as in
    ``librosa.griffinlim``; the dropped DC bin is set to zero. Phases start random
    (``seed``). Returns float32 samples at ``cfg.sample_rate``.
    """
    mag = np.exp(np.asarray(log_mag, np.float64)).T  # (200, frames)
    mag = torch.as_tensor(np.concatenate([np.zeros((1, mag.shape[1])), mag]))  # (201, frames)
    length = (mag.shape[1] - 1) * cfg.hop_length
    win = window(cfg)
    kw = dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=win)
    g = torch.Generator().manual_seed(seed)
    angles = torch.polar(
        torch.ones_like(mag), 2 * torch.pi * torch.rand(mag.shape, generator=g, dtype=mag.dtype)
    )
    previous = torch.zeros_like(angles)
    momentum = 0.99
    for _ in range(n_iter):
        audio = torch.istft(mag * angles, length=length, center=True, **kw)
        rebuilt = torch.stft(audio, center=True, pad_mode="constant", return_complex=True, **kw)
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / angles.abs().clamp_min(1e-16)
        previous = rebuilt
    audio = torch.istft(mag * angles, length=length, center=True, **kw)
    return audio.numpy().astype(np.float32)


def median_f0(audio: np.ndarray, rate: int) -> float:
    """Median f0 in Hz over the voiced frames (pyin, 60-400 Hz); NaN if none is voiced."""
    librosa = require("librosa")
    f0, voiced, _ = librosa.pyin(audio, fmin=60, fmax=400, sr=rate, frame_length=1024)
    f0 = f0[voiced & np.isfinite(f0)]
    return float(np.median(f0)) if f0.size else float("nan")


def match_level(audio: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``audio`` scaled to the RMS level of ``reference`` (silent audio is returned as is)."""
    audio = np.asarray(audio, np.float32)
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if rms == 0.0:
        return audio
    ref = float(np.sqrt(np.mean(np.square(np.asarray(reference, np.float64)))))
    return (audio * (ref / rms)).astype(np.float32)
