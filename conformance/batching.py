"""Batch sizes as options give them, and how a static graph is fed any number of items."""

from __future__ import annotations

import numpy as np


def batch_list(raw: str, option: str) -> list[int]:
    """`1,8` -> [1, 8]: positive batch sizes, duplicates dropped; a ValueError naming the option otherwise."""
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"{option} wants positive integers like 1,8, not {raw!r}")
    return list(dict.fromkeys(values))


def static_chunks(array: np.ndarray, batch: int) -> list[np.ndarray]:
    """How a static graph is fed any number of items: `batch` at a time, the last chunk padded by repeating its
    final item (runtime.run_onnx drops the padding's outputs; RKNN's build simulates exactly these chunks)."""
    chunks = []
    for start in range(0, len(array), batch):
        chunk = array[start : start + batch]
        chunks.append(np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)]))
    return chunks
