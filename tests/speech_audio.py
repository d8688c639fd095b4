"""Generated audio for the speech tests: each "speaker" is a harmonic tone of its own pitch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PITCH = {"alice": 220.0, "bob": 110.0, "carol": 330.0, "dave": 150.0}


def tone(pitch: float, seconds: float, rate: int = 8000, vowel: int = 0) -> np.ndarray:
    """A voiced sound: 4 harmonics of ``pitch``; ``vowel`` shifts their weights (the "word")."""
    t = np.arange(int(seconds * rate)) / rate
    weights = np.roll([0.5, 0.3, 0.15, 0.05], vowel)
    x = sum(w * np.sin(2 * np.pi * pitch * (k + 1) * t) for k, w in enumerate(weights))
    return (0.5 * x).astype(np.float32)


def write(path: Path, audio: np.ndarray, rate: int = 8000, fmt: str = "WAV") -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, format=fmt, subtype="PCM_16")
    return path


def fake_fsdd(root: Path, speakers=("alice", "bob", "carol"), digits=(0, 1), takes=7) -> Path:
    """FSDD's layout: recordings/{digit}_{speaker}_{take}.wav (takes 0-4 are its test set)."""
    for s in speakers:
        for d in digits:
            for k in range(takes):
                seconds = 0.25 + 0.03 * k
                write(root / "recordings" / f"{d}_{s}_{k}.wav", tone(PITCH[s], seconds, vowel=d))
    return root
