"""Evaluation: the Sprites judge and metrics on its outputs (Sec. 4.1, Table 1)."""
