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
        ("resnet", (1, 28, 28), 10),
        ("logreg", (1, 40), 10),
        ("mlp", (1, 40), 10),
        ("cnn", (1, 40), 10),
        ("resnet", (1, 40), 10),
        ("cnn", (2, 8), 3),
        ("mlp", (108,), 2),
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


def test_resnet_uses_batchnorm_with_fresh_running_stats():
    model = make_model("resnet", (3, 32, 32), 10, np.random.default_rng(0), dtype=torch.float64)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 9  # stem, 2 per block, 2 shortcuts
    for bn in bns:
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
        assert int(bn.num_batches_tracked) == 0 and bn.running_mean.dtype == torch.float64
    one_d = make_model("resnet", (1, 40), 10, np.random.default_rng(0))
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in one_d.modules())
    assert any(isinstance(m, torch.nn.Conv1d) for m in one_d.modules())


def test_resnet_group_norm_option_has_no_buffers():
    model = make_model("resnet", (3, 32, 32), 10, np.random.default_rng(0), norm="group")
    kinds = {type(m).__name__ for m in model.modules()}
    assert "GroupNorm" in kinds and not any("BatchNorm" in k for k in kinds)
    assert not list(model.buffers())  # gradients depend on the weights only
    with pytest.raises(ValueError, match="norm must be"):
        make_model("resnet", (3, 32, 32), 10, np.random.default_rng(0), norm="layer")


def test_cnn_uses_1d_convolutions_for_signals():
    model = make_model("cnn", (1, 40), 10, np.random.default_rng(0))
    assert any(isinstance(m, torch.nn.Conv1d) for m in model.modules())
    assert not any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name, shape", [("cnn", (1, 28, 28)), ("resnet", (3, 32, 32))])
def test_models_on_cuda_match_cpu(name, shape):
    cpu = make_model(name, shape, 10, np.random.default_rng(0), dtype=torch.float64).eval()
    gpu = make_model(
        name, shape, 10, np.random.default_rng(0), dtype=torch.float64, device="cuda"
    ).eval()
    x = torch.rand(3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), atol=1e-9, rtol=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cli_train_on_cuda_end_to_end(tmp_path, capsys):
    from gradcode.cli import main

    with pytest.raises(SystemExit) as exc:
        main(
            [
                "train",
                "--device",
                "cuda",
                "--dataset",
                "digits",
                "--model",
                "resnet",
                "-n",
                "4",
                "-s",
                "1",
                "--rounds",
                "3",
                "--quiet",
                "--out",
                str(tmp_path),
            ]
        )
    assert exc.value.code == 0, capsys.readouterr()
    assert (tmp_path / "summary.json").is_file()


@pytest.mark.parametrize(
    "args, match",
    [
        (("transformer", (30,), 2), "unknown model"),
        (("cnn", (30,), 2), "image input"),
        (("resnet", (13,), 3), "image input"),
        (("cnn", (1, 2, 2), 3), "at least 4 a side"),
        (("cnn", (1, 2), 3), "at least 4 a side"),
        (("cnn", (1, 2, 8, 8), 3), "image input"),
        (("mlp", (30,), 2.5), "n_classes must be an integer"),
        (("mlp", (30,), 1), "n_classes"),
        (("mlp", (0,), 2), "input_shape"),
    ],
)
def test_errors(args, match):
    with pytest.raises(ValueError, match=match):
        make_model(*args, np.random.default_rng(0))
