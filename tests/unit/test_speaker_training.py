"""Pieces shared by the speaker recipes (speechbrain_dyncp.verification.training)."""

import math

import pytest
import torch

from speechbrain_dyncp.verification.training import warmup_cosine_schedule


def _paper_lr(step, total, lr_max, lr_min, warm):
    """LAP's schedule as written in the paper: linear warm-up, then cosine to lr_min."""
    if step < warm:
        return lr_min + (lr_max - lr_min) * step / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * progress))


def _opt(lr):
    return torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr)


@pytest.mark.parametrize("total,warm,lr_max,lr_min", [(100, 10, 1e-3, 1e-5), (37, 3, 1e-3, 1e-5),
                                                      (50, 0, 5e-6, 5e-6), (20, 0, 1e-3, 1e-5)])
def test_schedule_is_the_papers_warmup_cosine(total, warm, lr_max, lr_min):
    opt = _opt(lr_max)
    sched = warmup_cosine_schedule(opt, total, warm, lr_min)
    for step in range(total):
        assert opt.param_groups[0]["lr"] == pytest.approx(_paper_lr(step, total, lr_max, lr_min, warm), rel=1e-9)
        opt.step()
        sched.step()


def test_schedule_resumes_from_its_state_dict():
    """Checkpointed with the optimizer, a resumed run gets the same LRs as an uninterrupted one."""
    full_opt = _opt(1e-3)
    full = warmup_cosine_schedule(full_opt, 40, 8, 1e-5)
    part_opt = _opt(1e-3)
    part = warmup_cosine_schedule(part_opt, 40, 8, 1e-5)
    for _ in range(5):  # through the warm-up
        part_opt.step()
        part.step()
    resumed_opt = _opt(1e-3)  # as a Brain resumes: build both, then load both from the checkpoint
    resumed = warmup_cosine_schedule(resumed_opt, 40, 8, 1e-5)
    resumed_opt.load_state_dict(part_opt.state_dict())
    resumed.load_state_dict(part.state_dict())
    for _ in range(5):
        full_opt.step()
        full.step()
    for _ in range(30):  # across the switch to the cosine
        assert resumed_opt.param_groups[0]["lr"] == pytest.approx(full_opt.param_groups[0]["lr"], rel=1e-12)
        for o, s in ((full_opt, full), (resumed_opt, resumed)):
            o.step()
            s.step()
