"""Small shared helpers: explicit seeding."""

from __future__ import annotations

import random

import numpy as np

__all__ = ["set_seed"]


def set_seed(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and (when imported) torch; return a fresh ``np.random.Generator``.

    The only place the package touches global random state (STYLE: determinism is explicit).
    """
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a requirement
        pass
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)
