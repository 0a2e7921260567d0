import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """On a shared 2-core machine two intra-op threads thrash (LeNet: ~7 ms/step with one
    thread, ~100 ms with two under load); one thread is also what torchrun gives each rank."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
