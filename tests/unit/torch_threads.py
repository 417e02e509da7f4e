"""Shared fixture: run a test module on one torch thread.

Per-frame DynCP ops are tiny; on a loaded 2-core machine a second OpenMP
thread only adds synchronisation cost (measured ~10x slower streaming tests).
Import ``one_thread`` into a test module to apply it there.
"""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Set torch to 1 thread for the module, then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
