import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: faster than two on the shared 2-core machine (see tests/train)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
