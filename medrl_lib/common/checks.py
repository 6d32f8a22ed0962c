"""Argument checks shared by the rewards, judges and metrics: caller errors raise ``ValueError`` naming the argument.

What a model wrote never raises (see :mod:`medrl_lib.rl.rewards`); these checks are for the caller's own arguments:
aligned columns of one length, counts that must be positive integers, switches that must be bools.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["check_lengths", "optional_positive_int", "positive_int", "strict_bool"]


def check_lengths(**columns: Sequence[Any]) -> int:
    """The common length of the named columns, or ``ValueError`` naming them all; 0 for no column.

    >>> check_lengths(questions=["q", "q"], reasonings=["a", "b"])
    2
    >>> check_lengths(questions=["q"], reasonings=[])
    Traceback (most recent call last):
    ...
    ValueError: length mismatch: 1 questions, 0 reasonings
    """
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("length mismatch: " + ", ".join(f"{n} {name}" for name, n in lengths.items()))
    return next(iter(lengths.values()), 0)


def strict_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool, else ``ValueError`` (``1`` and ``"yes"`` are not bools)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an int >= 1 (bools excluded), else ``ValueError``.

    >>> positive_int("batch_size", 8)
    8
    >>> positive_int("batch_size", True)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be a positive integer, got True
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def optional_positive_int(name: str, value: object) -> int | None:
    """``None``, or ``value`` if it is an int >= 1 (bools excluded), else ``ValueError``."""
    return None if value is None else positive_int(name, value)
