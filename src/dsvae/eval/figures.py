"""Figures 3 and 4 of the paper for a trained model (Sprites, or any image data set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dsvae import ops
from dsvae.model import DSVAE
from dsvae.viz import save_figure, save_gif, save_grid

FIGURE3_PANELS = {
    "a": "test data",
    "b": "reconstruction",
    "c": "z from the encoder, f from the prior",
    "d": "f from the encoder, z from the prior",
    "e": "f of the row above, z of the row below (swap)",
    "f": "f of the row below, z of the row above (swap)",
    "g": "generated with a fixed f",
    "h": "generated with a fixed z_1:T",
}


@torch.no_grad()
def figure3(model: DSVAE, x: torch.Tensor, out_dir: str | Path, *, seed: int = 0) -> list[Path]:
    """Panels (a)-(h) of Fig. 3 for test sequences ``x`` (B, T, C, H, W), B even.

    Each panel is one PNG (``figure3_<panel>.png``) and one GIF. Panels (e) and (f)
    swap the first half of ``x`` with the second half.
    """
    out_dir = Path(out_dir)
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    b, t = x.shape[:2]
    half = b // 2
    ab, ba = ops.swap(model, x[:half], x[half : 2 * half])
    panels = {
        "a": x,
        "b": ops.reconstruct(model, x),
        "c": ops.conditional_generate(model, x, "z", generator=gen),
        "d": ops.conditional_generate(model, x, "f", generator=gen),
        "e": ab,
        "f": ba,
        "g": ops.generate_fixed_f(model, b, t, generator=gen),
        "h": ops.generate_fixed_z(model, b, t, generator=gen),
    }
    paths = []
    for key, frames in panels.items():
        title = f"({key}) {FIGURE3_PANELS[key]}"
        paths.append(save_grid({title: frames}, out_dir / f"figure3_{key}.png"))
        paths.append(save_gif(frames, out_dir / f"figure3_{key}.gif"))
    return paths


@torch.no_grad()
def trajectories(
    model: DSVAE,
    judge,
    *,
    share: str,
    length: int,
    n: int = 200,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The judge's class per generated frame: arrays (repeats, n, T) per head (Fig. 4).

    ``share="f"``: each repeat draws one f and n dynamics z_1:T from the prior;
    ``share="z"``: one z_1:T and n contents f. The action head is per sequence,
    so its class is repeated over time.
    """
    if share not in ("f", "z"):
        raise ValueError(f"share must be 'f' or 'z', got {share!r}")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    make = ops.generate_fixed_f if share == "f" else ops.generate_fixed_z
    out: dict[str, list[np.ndarray]] = {}
    for _ in range(repeats):
        probs = judge.predict_proba(make(model, n, length, generator=gen))
        for name, p in probs.items():
            cls = p.argmax(-1).cpu().numpy()
            out.setdefault(name, []).append(
                cls if cls.ndim == 2 else np.repeat(cls[:, None], length, 1)
            )
    return {name: np.stack(v) for name, v in out.items()}


def plot_trajectories(
    classes: dict[str, np.ndarray], path: str | Path, *, title: str, seed: int = 0
) -> Path:
    """Fig. 4: one panel per head, time on x, class id on y, one colour per repeat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    names = list(classes)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), sharex=True)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        data = classes[name]  # (R, N, T)
        r, n, t = data.shape
        for k in range(r):
            jitter = rng.normal(0, 0.08, size=(n, 1))
            ax.plot(np.arange(t), (data[k] + jitter).T, color=f"C{k}", alpha=0.15, lw=0.8)
        ax.set_title(name)
        ax.set_xlabel("time")
        ax.set_yticks(range(int(data.max()) + 1))
    np.atleast_1d(axes)[0].set_ylabel("class id")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
