"""Stale-gradient corrections: parsing, the auto rule, each method, the warning, resume."""

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from gradcode.runtime import OptimizerConfig, TrainingStopped, train
from gradcode.runtime.config import RunConfig
from gradcode.runtime.stale import (
    DelayCompensation,
    MomentumCompensation,
    Prediction,
    StalenessLR,
    build,
    choose,
    parse,
    stale_schemes,
    top_curvature,
)
from gradcode.runtime.stale.auto import MOMENTA, tolerance
from gradcode.stability import delayed, max_stable_step, uniform

from .helpers import interrupted_then_resumed, oracle, setup


def _opt(lr=0.1, momentum=0.9):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=lr, momentum=momentum)


# ------------------------------------------------------------- names and validation


def test_stale_schemes_are_pgc_variants_and_sr_sgc():
    assert stale_schemes() == ["is_latefold", "pgc", "pgc_memory", "pgc_reference", "sr_sgc"]


@pytest.mark.parametrize(
    "spec,match",
    [
        ("nope", "must be one of"),
        ("predict:k=2", "bad option 'k=2'; options: horizon, mu"),
        ("predict:horizon=x", "horizon needs a number"),
        ("lr:x=1", "options: none"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        RunConfig(scheme="pgc", stale_correction=spec)


def test_a_method_on_a_fresh_scheme_is_refused_but_auto_is_a_no_op():
    with pytest.raises(ValueError, match="dgd applies no stale gradients"):
        RunConfig(scheme="dgd", stale_correction="predict")
    scheme, _, orc, _ = setup("frc")
    c = build("auto", scheme, _opt(), orc, orc.initial_weights())
    assert c.label == "none"


def test_options_parse():
    assert parse("momentum:mu=0") == ("momentum", {"mu": 0.0})
    assert parse("dc:lam=0.5") == ("dc", {"lam": 0.5})


# ------------------------------------------------------------- the auto rule


@pytest.mark.parametrize(
    "profile,expected",
    [
        (uniform(3), {"horizon": 3.0, "mu": 0.98}),  # PGC, s = 3
        (uniform(1), {"horizon": 1.0, "mu": 0.98}),  # PGC, s = 1
        (delayed(1), {"horizon": 2.0, "mu": 0.98}),  # SR-SGC, B = 1
        ((21 / 24, 3 / 24), {"horizon": 0.5}),  # pgc_memory, s = 3: the user's momentum will do
    ],
)
def test_auto_picks_prediction_at_the_most_tolerant_setting(profile, expected):
    assert choose(profile, "heavy_ball", 0.1, 0.9) == ("predict", expected)


def test_auto_never_lowers_momentum_and_keeps_the_long_run_step():
    name, opts = choose(uniform(3), "heavy_ball", 0.1, 0.99)
    assert name == "predict" and "mu" not in opts  # 0.99 > every candidate
    opt = _opt(0.1, 0.9)
    build("auto", setup("pgc", s=2)[0], opt, oracle(), oracle().initial_weights())
    g = opt.param_groups[0]
    assert g["momentum"] == max(MOMENTA)
    assert g["lr"] / (1 - g["momentum"]) == pytest.approx(0.1 / (1 - 0.9))


def test_auto_tolerates_more_curvature_than_the_uncorrected_scheme():
    for p in (uniform(3), delayed(1)):
        _, opts = choose(p, "heavy_ball", 0.1, 0.9)
        assert tolerance(p, opts["horizon"], opts["mu"]) > 10 * tolerance(p, 0.0, 0.9)


# ------------------------------------------------------------- the methods


def test_prediction_extrapolates_the_last_step():
    p = Prediction(horizon=1.5)
    st = p.init(torch.zeros(2))
    st, w0 = p.broadcast(st, 0, torch.tensor([1.0, 2.0]))
    st, w1 = p.broadcast(st, 1, torch.tensor([2.0, 2.0]))
    assert w0.tolist() == [1.0, 2.0] and w1.tolist() == [3.5, 2.0]


def test_prediction_with_mu_keeps_the_long_run_step():
    opt = _opt(0.1, 0.9)
    Prediction(2.0, mu=0.98).configure(opt)
    assert opt.param_groups[0]["momentum"] == 0.98
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)


def test_momentum_compensation_follows_mitliagkas_and_caps_at_the_stable_step():
    c = MomentumCompensation.from_profile(uniform(3), 0.1, 0.9)
    assert (round(c.momentum, 6), round(c.lr, 6)) == (0.75, 0.25)  # mu_imp = 0.6
    capped = MomentumCompensation.from_profile(uniform(3), 0.1, 0.9, curvature=5.0, mu=0.0)
    assert capped.lr == pytest.approx(0.5 * max_stable_step(uniform(3), 0.0) / 5.0, rel=1e-5)
    opt = _opt(0.1, 0.9)
    capped.configure(opt)
    assert opt.param_groups[0]["momentum"] == 0.0
    assert opt.param_groups[0]["lr"] == pytest.approx(capped.lr)


def test_delay_compensation_is_zero_for_a_fresh_update_and_first_order_otherwise():
    from types import SimpleNamespace

    dc = DelayCompensation(lam=1.0, depth=3)
    st = dc.init(None)
    for t, w in enumerate([0.0, 1.0, 3.0]):
        st, _ = dc.broadcast(st, t, torch.tensor([w], dtype=torch.float64))
    g = torch.tensor([2.0], dtype=torch.float64)
    fresh = SimpleNamespace(gradient=g, staleness_mean=0.0)
    assert dc.correct(st, 2, torch.tensor([3.0]), fresh)[1] is g
    stale = SimpleNamespace(gradient=g, staleness_mean=1.5)  # w 1.5 rounds ago = 0.5
    _, out = dc.correct(st, 2, torch.tensor([3.0], dtype=torch.float64), stale)
    assert float(out) == pytest.approx(2.0 + (1 / 2.0) * 4.0 * (3.0 - 0.5))
    assert float(g) == 2.0  # the update is never modified in place


def test_staleness_lr_divides_by_one_plus_the_mean_age():
    from types import SimpleNamespace

    g = torch.ones(2, dtype=torch.float64)
    out = StalenessLR().correct(None, 0, None, SimpleNamespace(gradient=g, staleness_mean=3.0))
    assert out[1].tolist() == [0.25, 0.25]


# ------------------------------------------------------------- curvature and warning


def test_curvature_of_logistic_regression_matches_the_hessian():
    orc = oracle()
    w = orc.initial_weights()
    H = torch.func.jacfwd(orc.full_gradient)(w)  # the exact Hessian (12 x 12)
    top = float(torch.linalg.eigvalsh((H + H.T) / 2)[-1])
    est = top_curvature(orc, w, np.random.default_rng(0), iters=60)
    assert est == pytest.approx(top, rel=1e-3)


def _warnings_of(name, **opt):
    scheme, cluster, orc, cfg = setup(name, s=2, rounds=2)
    cfg = replace(cfg, optimizer=OptimizerConfig(**opt))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            train(scheme, cluster, orc, cfg)
        except TrainingStopped:
            pass
    return [str(w.message) for w in caught if "stale" in str(w.message)]


def test_one_line_warning_for_unstable_stale_settings_only():
    msgs = _warnings_of("pgc", lr=2.0, momentum=0.9)
    assert len(msgs) == 1 and "\n" not in msgs[0] and "--stale-correction auto" in msgs[0]
    assert _warnings_of("pgc", lr=0.01, momentum=0.0) == []  # stable
    assert _warnings_of("dgd", lr=2.0, momentum=0.9) == []  # fresh gradients


# ------------------------------------------------------------- training


def _final_loss(name, correction, rounds=60):
    scheme, cluster, orc, cfg = setup(name, s=2, rounds=rounds)
    cfg = replace(cfg, optimizer=OptimizerConfig(lr=2.0, momentum=0.9), stale_correction=correction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = train(scheme, cluster, orc, cfg)
        except TrainingStopped:
            return float("inf")
    return res.final()["train_loss"]


@pytest.mark.parametrize("name", ["pgc", "sr_sgc"])
def test_auto_trains_where_the_uncorrected_scheme_diverges(name):
    # logistic regression, curvature 0.73: lr 2, momentum 0.9 is 2 x 0.73 = 1.5 < 3.8
    # (fresh: stable) but far above PGC's 0.07 / SR-SGC's 0.1 at s = 2 (stale: diverges)
    start = oracle().train_loss(oracle().initial_weights())
    dgd = _final_loss("dgd", "none")
    assert _final_loss(name, "none") > start  # diverges
    assert _final_loss(name, "auto") < min(start, 1.5 * dgd)


# ------------------------------------------------------------- resume


@pytest.mark.parametrize("correction", ["predict", "dc", "auto"])
def test_resume_with_a_correction_is_bit_identical(tmp_path, correction):
    def fresh():
        scheme, cluster, orc, cfg = setup("pgc_memory", s=2, rounds=16)
        return (
            scheme,
            cluster,
            orc,
            replace(
                cfg,
                checkpoint_every=4,
                stale_correction=correction,
                optimizer=OptimizerConfig(lr=0.5, momentum=0.5),
            ),
        )

    full = train(*fresh())
    resumed = interrupted_then_resumed(fresh, 9, tmp_path / "ck.pt")
    assert torch.equal(resumed.weights, full.weights)
    assert full.history[0]["stale_correction"].startswith("predict" if correction != "dc" else "dc")


# ------------------------------------------------------------- front doors


def test_fit_takes_stale_correction():
    import gradcode

    X = torch.randn(96, 4, generator=torch.Generator().manual_seed(0))
    y = (X[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    res = gradcode.fit(model, (X, y), scheme="pgc", workers=6, stragglers=1, rounds=3,
                       stale_correction="auto", eval_every=3,
                       optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))  # fmt: skip
    assert res.history[0]["stale_correction"].startswith("predict(")
    with pytest.raises(ValueError, match="dgd applies no stale gradients"):
        gradcode.fit(model, (X, y), scheme="dgd", stale_correction="dc", rounds=1)


def test_cli_refuses_a_bad_correction_in_one_line(tmp_path, capsys):
    from gradcode.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--scheme", "pgc", "--stale-correction", "magic", "--rounds", "1",
              "--out", str(tmp_path / "x"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert exc.value.code != 0 and "stale_correction must be one of" in err
    assert len(err.strip().splitlines()) == 1
