"""The first baselines' own pieces: NAdamW's update formula and the warmup/decay schedule.

(That every baseline trains and round-trips a checkpoint is tested with the library's update rules
in tests/test_library.py.)"""

import torch

from laptime.algorithms import schedules


def test_nadamw_matches_its_formula():
    from laptime.algorithms.nadamw import NAdamW

    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5))
    ref = p.detach().clone()
    opt = NAdamW([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.5)
    m = torch.zeros(5)
    v = torch.zeros(5)
    for t in range(1, 4):
        g = torch.randn(5)
        p.grad = g.clone()
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        ref = ref * (1 - 0.1 * 0.5)
        m_hat = (0.9 * m + 0.1 * g) / (1 - 0.9**t)
        v_hat = v / (1 - 0.99**t)
        ref = ref - 0.1 * m_hat / (v_hat.sqrt() + 1e-8)
        assert torch.allclose(p.detach(), ref, atol=1e-6), t


def test_warmup_decay_schedule_values():
    s = schedules.warmup_decay(total_steps=10, warmup_steps=2, decay="linear")
    assert [round(s(i), 4) for i in range(12)] == [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125,
                                                     0.0, 0.0]
    c = schedules.warmup_decay(total_steps=4, warmup_steps=0, decay="cosine")
    assert [round(c(i), 4) for i in range(6)] == [1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
