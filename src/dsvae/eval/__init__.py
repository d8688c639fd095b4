"""Evaluation: the Sprites judge and metrics on its outputs (Sec. 4.1, Table 1)."""

from dsvae.eval.verification import equal_error_rate

__all__ = ["equal_error_rate"]
