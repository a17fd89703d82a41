"""Vectorized text columns: numbers, dates, money and joins rendered by Arrow, never row by row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Text = pa.Array | pa.ChunkedArray
Part = Text | str

SECONDS_PER_DAY = 86_400


def text(values: np.ndarray) -> pa.Array:
    """Integers as decimal text."""
    return pa.array(values).cast(pa.string())


def ids(count: int, start: int = 1) -> pa.Array:
    return text(np.arange(start, start + count, dtype=np.int64))


def padded(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(text(values), width=width, padding="0")


def cat(*parts: Part) -> pa.Array:
    """Element-wise concatenation; a null part makes the result null."""
    return pc.binary_join_element_wise(*parts, "")


def pick(vocab: np.ndarray, index: np.ndarray) -> pa.Array:
    return pc.take(pa.array(vocab, pa.string()), pa.array(index, pa.int64()))


def where(mask: np.ndarray, when_true: Part, otherwise: Part) -> pa.Array:
    return pc.if_else(pa.array(mask, pa.bool_()), when_true, otherwise)


def null_where(mask: np.ndarray, values: Text) -> pa.Array:
    return pc.if_else(pa.array(mask, pa.bool_()), pa.scalar(None, pa.string()), values)


def dates(days: np.ndarray) -> pa.Array:
    """Days since 1970-01-01 as `YYYY-MM-DD`."""
    return pa.array(days.astype(np.int32), pa.date32()).cast(pa.string())


def us_dates(days: np.ndarray) -> pa.Array:
    """Days since 1970-01-01 as `MM/DD/YYYY`."""
    return pc.strftime(pa.array(days.astype(np.int32), pa.date32()), format="%m/%d/%Y")


def stamps(seconds: np.ndarray) -> pa.Array:
    """Local wall-clock seconds since 1970-01-01 as `YYYY-MM-DD HH:MM:SS`."""
    return pa.array(seconds.astype(np.int64), pa.timestamp("s")).cast(pa.string())


def clock(minutes: np.ndarray) -> pa.Array:
    """Minutes after midnight as `HH:MM`."""
    return cat(padded(minutes // 60, 2), ":", padded(minutes % 60, 2))


def money(cents: np.ndarray) -> pa.Array:
    """Exact cents as `1234.50`."""
    return cat(text(cents // 100), ".", padded(cents % 100, 2))


def messy_money(cents: np.ndarray) -> pa.Array:
    """Exact cents as spreadsheets print them: `$1,234.50` (`$87.10` under a thousand)."""
    dollars = cents // 100
    thousands = cat(text(dollars // 1000), ",", padded(dollars % 1000, 3))
    return cat("$", where(dollars >= 1000, thousands, text(dollars)), ".", padded(cents % 100, 2))


def decimal1(tenths: np.ndarray) -> pa.Array:
    """Non-negative tenths as `12.3`."""
    return cat(text(tenths // 10), ".", text(tenths % 10))


def table(columns: Sequence[str], arrays: Sequence[Part], rows: int) -> pa.Table:
    """A table of text columns; a plain string fills its whole column."""
    filled = [pa.repeat(pa.scalar(a, pa.string()), rows) if isinstance(a, str) else a for a in arrays]
    return pa.table([f.cast(pa.string()) for f in filled], names=list(columns))


def weighted(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    """Indices into `weights` drawn with those probabilities."""
    cumulative = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cumulative, rng.random(size), side="right"), len(weights) - 1)


def group_positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows repeated `counts` times: (owner index, 0-based position within the owner) per row."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(len(owner)) - np.repeat(starts, counts)


def group_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Running totals of `values` that restart for each owner of `counts` consecutive rows."""
    running = np.cumsum(values)
    before = np.concatenate([np.zeros(1, dtype=running.dtype), running])[np.cumsum(counts) - counts]
    return running - np.repeat(before, counts)
