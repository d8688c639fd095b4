"""The paper's Sprites numbers and the Markdown tables that put ours beside them (Sec. 4.1)."""

from __future__ import annotations

import numpy as np

ATTRIBUTES = ("skin", "pants", "tops", "hair")
# The action label is 3 * motion + direction: motions [walk, spellcast, slash], directions
# [front, left, right]. The direction does not change within a sequence, so it is as much
# content as motion; both parts are reported beside the paper's action row.
ACTION_PARTS = ("motion", "direction")

# Li & Mandt (2018), Table 1 (factorised q, paper network)
PAPER_TABLE1 = {
    "skin": {"disagreement": 0.0398, "kl_recon": 0.7847, "kl_random": 8.8859},
    "pants": {"disagreement": 0.0182, "kl_recon": 0.3565, "kl_random": 8.9293},
    "tops": {"disagreement": 0.0034, "kl_recon": 0.0647, "kl_random": 8.9173},
    "hair": {"disagreement": 0.0006, "kl_recon": 0.0126, "kl_random": 8.9566},
    "action": {"disagreement": 0.0811, "kl_recon": 0.9027, "kl_random": 13.7510},
}
# A published re-run of DSVAE under the later-work protocol (action accuracy).
PUBLISHED_LATER_WORK = {"action_acc": 0.9073}


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def _row_label(name: str) -> str:
    return f"action: {name}" if name in ACTION_PARTS else name


def table1_markdown(rows: dict[str, dict[str, float]]) -> str:
    """Our Table 1 next to the paper's (factorised q, paper network)."""
    lines = [
        "| attribute | disagreement | paper | KL-recon | paper | KL-random | paper |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        if name not in PAPER_TABLE1:  # the two parts of the action row
            lines.append(
                f"| {_row_label(name)} | {_pct(row['disagreement'])} | — | {row['kl_recon']:.4f} | — | "
                f"{row['kl_random']:.4f} | — |"
            )
            continue
        p = PAPER_TABLE1[name]
        lines.append(
            f"| {name} | {_pct(row['disagreement'])} | {_pct(p['disagreement'])} | "
            f"{row['kl_recon']:.4f} | {p['kl_recon']:.4f} | {row['kl_random']:.4f} | {p['kl_random']:.4f} |"
        )
    return "\n".join(lines)


def later_work_markdown(result: dict[str, float]) -> str:
    """The later-work protocol; ceilings IS = 9 and H(y) = ln 9 for the actions."""
    lines = [
        "| keep z, sample f | value | ceiling |",
        "|---|---|---|",
        f"| action Acc | {_pct(result['action_acc'])} | 100% (published DSVAE re-run: {_pct(PUBLISHED_LATER_WORK['action_acc'])}) |",
        f"| IS | {result['inception_score']:.3f} | 9 |",
        f"| H(y\\|x) | {result['h_y_given_x']:.3f} | 0 |",
        f"| H(y) | {result['h_y']:.3f} | {np.log(9):.3f} |",
        f"| motion Acc (walk / spellcast / slash) | {_pct(result['motion_acc'])} | 100% |",
        f"| direction Acc (front / left / right) | {_pct(result['direction_acc'])} | 100% |",
        "",
        "| keep f, sample z | accuracy |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_pct(result[f'{name}_acc'])} |" for name in ATTRIBUTES]
    return "\n".join(lines)


def inferred_factors_markdown(
    diag: dict[str, dict[str, float]], rows: dict[str, dict[str, float]]
) -> str:
    """The two diagnostics beside the Table 1 disagreement of the same row."""
    lines = [
        "| attribute | reconstruction (f, z inferred) | swap (f, z inferred from two sequences) "
        "| Table 1 (one factor sampled) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {_row_label(name)} | {_pct(value)} | {_pct(diag['swap'][name])} | "
        f"{_pct(rows[name]['disagreement'])} |"
        for name, value in diag["reconstruction"].items()
    ]
    return "\n".join(lines)
