"""Model zoo: output shapes, seeded init, clean errors."""

import numpy as np
import pytest
import torch

from gradcode.models import DEFAULT_DATASET, available_models, make_model
from gradcode.task import flatten


@pytest.mark.parametrize(
    "name, shape, classes",
    [
        ("logreg", (30,), 2),
        ("logreg", (1, 8, 8), 10),
        ("mlp", (13,), 3),
        ("mlp", (1, 8, 8), 10),
        ("cnn", (1, 8, 8), 10),
        ("cnn", (1, 28, 28), 10),
        ("cnn", (3, 32, 32), 10),
        ("resnet", (1, 8, 8), 10),
        ("resnet", (3, 32, 32), 10),
    ],
)
def test_logits_shape(name, shape, classes):
    model = make_model(name, shape, classes, np.random.default_rng(0))
    out = model(torch.rand(4, *shape))
    assert out.shape == (4, classes) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_available_models_and_defaults():
    assert available_models() == ["logreg", "mlp", "cnn", "resnet"]
    assert set(DEFAULT_DATASET) == set(available_models())


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn", "resnet"])
def test_init_is_seeded_and_leaves_global_rng_alone(name):
    torch.manual_seed(7)
    before = torch.get_rng_state()
    a = flatten(make_model(name, (1, 8, 8), 10, np.random.default_rng(1)))
    b = flatten(make_model(name, (1, 8, 8), 10, np.random.default_rng(1)))
    c = flatten(make_model(name, (1, 8, 8), 10, np.random.default_rng(2)))
    assert torch.equal(before, torch.get_rng_state())
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.isfinite(a).all()


def test_float64_model_matches_float32_init():
    w32 = flatten(make_model("mlp", (13,), 3, np.random.default_rng(0)))
    m64 = make_model("mlp", (13,), 3, np.random.default_rng(0), dtype=torch.float64)
    assert next(m64.parameters()).dtype == torch.float64
    assert torch.get_default_dtype() == torch.float32
    np.testing.assert_allclose(flatten(m64), w32, rtol=1e-6, atol=1e-7)


def test_resnet_has_no_batchnorm():
    model = make_model("resnet", (3, 32, 32), 10, np.random.default_rng(0))
    kinds = {type(m).__name__ for m in model.modules()}
    assert "GroupNorm" in kinds and not any("BatchNorm" in k for k in kinds)
    assert not list(model.buffers())  # no running statistics: gradients depend on weights only


@pytest.mark.parametrize(
    "args, match",
    [
        (("transformer", (30,), 2), "unknown model"),
        (("cnn", (30,), 2), "image input"),
        (("resnet", (13,), 3), "image input"),
        (("cnn", (1, 2, 2), 3), "at least 4x4"),
        (("mlp", (30,), 1), "n_classes"),
        (("mlp", (0,), 2), "input_shape"),
    ],
)
def test_errors(args, match):
    with pytest.raises(ValueError, match=match):
        make_model(*args, np.random.default_rng(0))
