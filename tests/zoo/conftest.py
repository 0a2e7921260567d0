"""Shared fixtures for the zoo tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """Run zoo tests on one intra-op thread.

    The inputs are tiny, and on a shared 2-core machine a second OpenMP thread waiting for a
    busy core can make a millisecond forward take over a second.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
