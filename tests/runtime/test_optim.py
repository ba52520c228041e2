"""``FlatParams``: the trainable parameters as views into one flat tensor; the named
optimizers of ``OptimizerConfig``."""

from __future__ import annotations

import pytest
import torch

from gradcode.runtime.optim import FlatParams, OptimizerConfig


def test_parameters_are_views_of_the_flat_tensor_and_step_in_place():
    lin = torch.nn.Linear(3, 2)
    fp = FlatParams(list(lin.parameters()))
    assert fp.flat.numel() == 8 and lin.weight.data_ptr() == fp.flat.data_ptr()
    fp.set_grad(torch.ones(8))
    fp.step(torch.optim.SGD(fp.params, lr=0.5))
    torch.testing.assert_close(lin.bias, fp.flat[6:])


def test_frozen_parameters_are_refused():
    lin = torch.nn.Linear(3, 2)
    lin.bias.requires_grad_(False)
    with pytest.raises(ValueError, match=r"parameters \[1\] have requires_grad=False"):
        FlatParams(list(lin.parameters()))


def _trajectory(cfg: OptimizerConfig, steps: int = 3) -> list[float]:
    """Minimise w^2 / 2 from w = 1 (gradient w): the iterates of ``cfg``."""
    w = torch.nn.Parameter(torch.ones(1))
    opt, out = cfg([w]), []
    for _ in range(steps):
        w.grad = w.detach().clone()
        opt.step()
        out.append(w.item())
    return out


def test_nesterov_takes_the_look_ahead_step_and_is_plain_sgd_at_momentum_zero():
    # heavy ball: v = mu v + g, w -= lr v; Nesterov: w -= lr (g + mu v) (Sutskever et al. 2013)
    heavy = _trajectory(OptimizerConfig("sgd", lr=0.1, momentum=0.9))
    nesterov = _trajectory(OptimizerConfig("nesterov", lr=0.1, momentum=0.9))
    assert heavy[0] == pytest.approx(0.9) and nesterov[0] == pytest.approx(1 - 0.1 * 1.9)
    assert nesterov[1:] != pytest.approx(heavy[1:])
    plain = _trajectory(OptimizerConfig("sgd", lr=0.1))
    assert _trajectory(OptimizerConfig("nesterov", lr=0.1)) == pytest.approx(plain)


def test_an_unknown_optimizer_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="one of sgd, nesterov, adam, got 'rmsprop'"):
        OptimizerConfig("rmsprop")
