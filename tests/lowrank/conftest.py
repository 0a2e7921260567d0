import pytest
import torch


@pytest.fixture(autouse=True)
def _no_grad_one_thread():
    """Reference checks need no autograd; one thread is much faster on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.no_grad():
        yield
    torch.set_num_threads(threads)
