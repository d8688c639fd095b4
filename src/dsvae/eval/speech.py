"""Speaker verification, the Table 2 protocol of Section 4.2, on a speech data set.

For every test utterance of N segments x^(n)_1:T the model gives two embeddings:

    mu_f = 1/N sum_n E_q[f^n],   mu_z = 1/(TN) sum_n sum_t E_q[z^n_t]

(means of q(f | x_1:T) and of q(z_t | ...)). Every pair of test utterances is scored by
the cosine of their embeddings and the equal error rate is reported
(:func:`dsvae.eval.verification.equal_error_rate`). Two non-learned reference rows stand
where the paper's i-vector row stands: the utterance's mean normalised log spectrum, and
its mean MFCC (c1-c19 of 40 mel bands, centred on the mean over the test utterances).

Two conditions, one per test split of ``dsvae data speech``: ``test-seen`` (held-out
utterances of the training speakers) and ``test-unseen`` (speakers never trained on).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from dsvae import ops
from dsvae.data import SequenceDataset, model_batches, require_same_frames
from dsvae.data.speech import spectrogram_settings
from dsvae.errors import DataError
from dsvae.eval.report import finish_report
from dsvae.eval.verification import cosine_scores, equal_error_rate, trial_labels

CONDITIONS = {
    "test-seen": "held-out utterances of the training speakers",
    "test-unseen": "speakers never seen in training",
}
# Li & Mandt (2018), Table 2: TIMIT core test set (24 speakers, 18,336 pairs), EER.
PAPER_TABLE2 = {
    ("i-vector", 200): 0.0982,
    ("factorised", "mu_f", 16): 0.0478,
    ("factorised", "mu_z", 16): 0.1784,
    ("factorised", "mu_f", 64): 0.0494,
    ("factorised", "mu_z", 64): 0.1749,
    ("full", "mu_f", 16): 0.0564,
    ("full", "mu_z", 16): 0.1920,
    ("full", "mu_f", 64): 0.0482,
    ("full", "mu_z", 64): 0.1889,
}
N_MFCC = 20
N_MELS = 40


def load_condition(data_dir: str | Path, split: str) -> SequenceDataset:
    """One test split of a speech data set, checked for the labels the protocol needs."""
    dataset = SequenceDataset(Path(data_dir) / split)
    missing = [k for k in ("speaker", "utterance") if k not in dataset.labels]
    if missing or "spectrogram" not in dataset.meta:
        raise DataError(
            f"{dataset.path} is not a speech split (no {missing or 'spectrogram'}); build one "
            "with `dsvae data speech`"
        )
    return dataset


def _per_utterance(values: np.ndarray, utterance: np.ndarray) -> np.ndarray:
    """Average rows of ``values`` (N, E) over the segments of each utterance -> (U, E)."""
    ids, inverse = np.unique(utterance, return_inverse=True)
    sums = np.zeros((len(ids), values.shape[1]))
    np.add.at(sums, inverse, values)
    return sums / np.bincount(inverse)[:, None]


def utterance_speakers(dataset: SequenceDataset) -> np.ndarray:
    """The speaker of each utterance, in the order of :func:`_per_utterance`."""
    utt, spk = dataset.labels["utterance"], dataset.labels["speaker"]
    ids, first = np.unique(utt, return_index=True)
    return spk[first]


@torch.no_grad()
def model_embeddings(
    model, dataset: SequenceDataset, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """mu_f (U, F) and mu_z (U, Z) per utterance (posterior means, Table 2 protocol)."""
    device = next(model.parameters()).device
    f_rows, z_rows = [], []
    for x in model_batches(dataset, batch_size, device=device):  # (B, T, D)
        enc = ops.encode(model, x)
        f_rows.append(enc.f.double().cpu().numpy())  # (B, F)
        z_rows.append(enc.z.mean(dim=1).double().cpu().numpy())  # (B, Z): mean over t
    utt = dataset.labels["utterance"]
    return {
        "mu_f": _per_utterance(np.concatenate(f_rows), utt),
        "mu_z": _per_utterance(np.concatenate(z_rows), utt),
    }


def _frame_means(dataset: SequenceDataset, transform, batch_size: int = 512) -> np.ndarray:
    """Per-utterance mean over the real (unpadded) frames of ``transform(frames)``."""
    padded = dataset.labels.get("padded", np.zeros(len(dataset), np.int64))
    rows = []
    for start in range(0, len(dataset), batch_size):
        x = transform(np.array(dataset.frames[start : start + batch_size], np.float64))  # (B, T, E)
        t = x.shape[1]
        keep = np.arange(t)[None, :] < (t - padded[start : start + len(x)])[:, None]  # (B, T)
        rows.append((x * keep[..., None]).sum(1) / keep.sum(1, keepdims=True))
    utt = dataset.labels["utterance"]
    # segments of one utterance are weighted equally, like mu_f
    return _per_utterance(np.concatenate(rows), utt)


def mfcc_transform(dataset: SequenceDataset):
    """Normalised log spectra (B, T, 200) -> MFCC c1..c19 (B, T, 19) from 40 mel bands."""
    import scipy.fft

    from dsvae.audio import require

    librosa = require("librosa")
    cfg, stats = spectrogram_settings(dataset.meta)
    mel = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=N_MELS)[
        :, 1:
    ]  # (40, 200)

    def transform(x: np.ndarray) -> np.ndarray:
        power = np.exp(2.0 * (x * stats.std + stats.mean))  # (B, T, 200)
        logmel = np.log(power @ mel.T + 1e-10)  # (B, T, 40)
        return scipy.fft.dct(logmel, type=2, norm="ortho", axis=-1)[..., 1:N_MFCC]

    return transform


def reference_embeddings(dataset: SequenceDataset) -> dict[str, np.ndarray]:
    """The non-learned rows: mean log spectrum (200) and centred mean MFCC (19)."""
    spectrum = _frame_means(dataset, lambda x: x)
    mfcc = _frame_means(dataset, mfcc_transform(dataset))
    return {"log-spectrum": spectrum, "mfcc": mfcc - mfcc.mean(0, keepdims=True)}


def verify(embeddings: np.ndarray, speakers: np.ndarray) -> dict[str, float | int]:
    """EER over every pair of utterances, and the numbers of trials."""
    scores, i, j = cosine_scores(embeddings)
    same = trial_labels(speakers, i, j)
    return {
        "eer": equal_error_rate(scores, same),
        "trials": int(len(same)),
        "same_speaker_trials": int(same.sum()),
    }


def evaluate_condition(models: dict[str, object], dataset: SequenceDataset) -> dict:
    """Every row of Table 2 on one test split: reference rows, then mu_f and mu_z per model."""
    speakers = utterance_speakers(dataset)
    if len(np.unique(speakers)) < 2:
        raise DataError(f"{dataset.path} has one speaker only; verification needs two or more")
    rows = []
    for feature, emb in reference_embeddings(dataset).items():
        rows.append(
            {"model": "reference", "feature": feature, "dim": emb.shape[1], **verify(emb, speakers)}
        )
    for name, model in models.items():
        cfg = model.config
        for feature, emb in model_embeddings(model, dataset).items():
            rows.append(
                {
                    "model": name,
                    "posterior": cfg.posterior,
                    "feature": feature,
                    "dim": emb.shape[1],
                    **verify(emb, speakers),
                }
            )
    first = rows[0]
    return {
        "description": CONDITIONS.get(dataset.path.name, dataset.path.name),
        "data": str(dataset.path),
        "utterances": len(speakers),
        "speakers": len(np.unique(speakers)),
        "segments": len(dataset),
        "trials": first["trials"],
        "same_speaker_trials": first["same_speaker_trials"],
        "rows": rows,
    }


def paper_eer(row: dict) -> float | None:
    """The paper's TIMIT EER for the same kind of row, if it has one."""
    if row["model"] == "reference":
        return None
    return PAPER_TABLE2.get((row.get("posterior"), row["feature"], row["dim"]))


def table_markdown(condition: dict) -> str:
    """One condition's Table 2 with the paper's TIMIT numbers beside it."""
    feature_names = {
        "mu_f": "μ_f",
        "mu_z": "μ_z",
        "log-spectrum": "mean log spectrum",
        "mfcc": "mean MFCC",
    }
    lines = [
        f"{condition['utterances']} utterances of {condition['speakers']} speakers, {condition['trials']:,} "
        f"trials ({condition['same_speaker_trials']:,} same-speaker)",
        "",
        "| model | q | feature | dim | EER | paper (TIMIT) |",
        "|---|---|---|---|---|---|",
    ]
    for row in condition["rows"]:
        paper = paper_eer(row)
        ref = row["model"] == "reference"
        paper_text = (
            f"{100 * paper:.2f}%" if paper is not None else ("i-vector 9.82%" if ref else "")
        )
        lines.append(
            f"| {row['model']} | {row.get('posterior', '-')} | {feature_names[row['feature']]} | {row['dim']} | "
            f"{100 * row['eer']:.2f}% | {paper_text} |"
        )
    return "\n".join(lines)


def evaluate_speech(runs: list[str | Path], data_dir: str | Path, out_dir: str | Path) -> dict:
    """Table 2 on both conditions for every run; writes ``speech_eval.json`` and ``.md``."""
    from dsvae.model import load_model

    start = time.perf_counter()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    splits = [s for s in CONDITIONS if (data_dir / s).is_dir()]
    if not splits:
        raise DataError(
            f"{data_dir} has no test-seen/ or test-unseen/ split; pass the folder written by "
            "`dsvae data speech`"
        )
    models = {}
    for run in runs:
        model = load_model(run)
        name = Path(run).name if Path(run).name != "model" else Path(run).parent.name
        models[name] = model
    conditions = {}
    for split in splits:
        dataset = load_condition(data_dir, split)
        for name, model in models.items():
            require_same_frames(
                dataset.frame_shape, model.frame_shape, f"{dataset.path} is not its data", name
            )
        conditions[split] = evaluate_condition(models, dataset)
    report = {
        "conditions": conditions,
        "paper_table2_timit": {" ".join(map(str, k)): v for k, v in PAPER_TABLE2.items()},
        "runs": [str(r) for r in runs],
        "data": str(data_dir),
    }
    parts = ["# Speaker verification (Table 2 protocol)", ""]
    for split, cond in conditions.items():
        parts += [f"## {split}: {cond['description']}", "", table_markdown(cond), ""]
    return finish_report(out_dir / "speech_eval", report, "\n".join(parts), start)
