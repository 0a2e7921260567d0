import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small models on a shared 2-core machine run faster on one intra-op thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
