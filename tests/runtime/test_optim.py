"""``FlatParams``: the trainable parameters as views into one flat tensor."""

from __future__ import annotations

import pytest
import torch

from gradcode.runtime.optim import FlatParams


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
