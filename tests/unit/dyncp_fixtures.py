"""Shared fixtures of the DynCP model tests (import them into a test module).

* ``planted_model``: a tiny causal gated float64 model (no gate flips from
  rounding) with non-trivial norm statistics and ~30% planted gates.
"""

import pytest
import torch

from speechbrain_dyncp.efficiency import plant_gate_ratio
from speechbrain_dyncp.lobes.enhancer import dyncp_small


@pytest.fixture(scope="module")
def planted_model():
    """dyncp_small(B=8, H=16, r=4) in float64, eval, random norm stats, 30% gates."""
    torch.manual_seed(0)
    m = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval().double()
    for blk in m.tcn.blocks:
        for bn in (blk.norm1, blk.norm2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    plant_gate_ratio(m, torch.randn(1, 6000, dtype=torch.double), 0.3)
    return m
