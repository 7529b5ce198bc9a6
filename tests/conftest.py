"""Shared fixtures: the offline datasets (CI sets BINCF_DATA_DIR=../shared/datasets)."""

import os
from pathlib import Path

import pytest

import bincf_lite as bl


def _data_dir() -> str | None:
    candidates = [os.environ.get("BINCF_DATA_DIR"), str(Path(__file__).parents[2] / "shared" / "datasets")]
    for c in candidates:
        if c and (Path(c) / "ml-1m").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def data_dir():
    d = _data_dir()
    if d is None:
        pytest.skip("MovieLens not found: set BINCF_DATA_DIR to a directory holding ml-100k/ and ml-1m/")
    return d


@pytest.fixture(scope="session")
def ml1m(data_dir):
    return bl.load_dataset("ml-1m", data_dirs=[data_dir], download=False)


@pytest.fixture(scope="session")
def ml100k(data_dir):
    return bl.load_dataset("ml-100k", data_dirs=[data_dir], download=False)


@pytest.fixture(scope="session")
def toy():
    return bl.synthetic_interactions(num_users=200, num_items=120, num_clusters=4, seed=1)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Unit tests run two to a 2-core machine (pytest -n 2): one torch thread each avoids
    oversubscription, which slowed small torch operations tenfold."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
