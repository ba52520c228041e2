"""Trajectory signatures: equal signatures <=> equal weight trajectories.

The proof in :mod:`gradcode.runtime.signature` is by induction; these tests check
it on real training (float64, minibatches, an MLP with dropout-free layers):
cells whose signatures agree end at the same weights, and cells whose
signatures differ do not.  They also pin the signature's timing records to the
real run's log.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from gradcode.runtime.config import DelaySpec, RunConfig
from gradcode.runtime.run import run
from gradcode.runtime.signature import SketchOracle, same_trajectory, sketch_run, trajectory_key

SEXP = DelaySpec("shifted-exp:a=1,mu=1")
PERSISTENT = DelaySpec("shifted-exp:a=1,mu=1", persistent="k=1,kappa=5")
CRASH = DelaySpec("shifted-exp:a=1,mu=1", crash="count=1,at_round=3")

BASE = RunConfig(
    scheme="dgd",
    workers=6,
    stragglers=1,
    dataset="digits",
    model="mlp",
    rounds=10,
    lr=0.3,
    momentum=0.9,
    batch_size=8,
    eval_every=5,
    dtype="float64",
    seed=3,
)


def _weights(cfg: RunConfig, tmp_path) -> torch.Tensor:
    out = tmp_path / f"{cfg.scheme}_{cfg.stragglers}_{abs(hash(cfg.delay))}"
    result = run(cfg, out)
    return result.weights


EXACT = ["dgd", "frc", "crc", "cyclic_mds", "partial"]


@pytest.mark.parametrize("delay", [SEXP, PERSISTENT], ids=["shifted_exp", "persistent"])
def test_exact_schemes_share_dgd_trajectory(delay, tmp_path):
    ref_sig, _ = sketch_run(replace(BASE, delay=SEXP))
    ref_w = _weights(BASE, tmp_path)
    for scheme in EXACT:
        cfg = replace(BASE, scheme=scheme, delay=delay)
        sig, _ = sketch_run(cfg)
        assert same_trajectory(sig, ref_sig), scheme
        w = _weights(cfg, tmp_path)
        assert torch.allclose(w, ref_w, rtol=1e-10, atol=1e-12), scheme


def test_different_signatures_mean_different_weights(tmp_path):
    """IS-SGD and DGD-after-a-crash apply other updates: both the signature and the
    weights say so (so the equality test above can fail)."""
    ref_sig, _ = sketch_run(BASE)
    ref_w = _weights(BASE, tmp_path)
    for cfg in (replace(BASE, scheme="is_sgd"), replace(BASE, delay=CRASH)):
        sig, _ = sketch_run(cfg)
        assert not same_trajectory(sig, ref_sig)
        assert not torch.allclose(_weights(cfg, tmp_path), ref_w, rtol=1e-6)


def test_equal_signature_across_delay_models_means_equal_weights(tmp_path):
    """IS-SGD under two delay models with the same arrival order (monotone transforms
    of the same draws) applies the same updates: same signature, same weights."""
    a = replace(BASE, scheme="is_sgd")
    b = replace(a, delay=DelaySpec("pareto:alpha=1.5"))
    sa, _ = sketch_run(a)
    sb, _ = sketch_run(b)
    assert same_trajectory(sa, sb)
    assert torch.allclose(_weights(a, tmp_path), _weights(b, tmp_path), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scheme", ["frc", "is_sgd", "pgc", "partial", "sr_sgc"])
def test_sketch_records_are_the_real_log(scheme, tmp_path):
    """The replay logs exactly the real run's clock, arrivals and decoder fields."""
    cfg = replace(BASE, scheme=scheme, delay=PERSISTENT, dtype="float32")
    _, recs = sketch_run(cfg)
    run(cfg, tmp_path / scheme)
    real = [json.loads(ln) for ln in (tmp_path / scheme / "rounds.jsonl").read_text().splitlines()]
    assert len(recs) == len(real)
    for mine, theirs in zip(recs, real, strict=True):
        for key in ("round", "time", "duration", "arrived", "late", "ready", "exact", "notes"):
            assert mine.get(key) == theirs.get(key), (scheme, key)
        for key in ("residual", "staleness_max", "staleness_mean"):
            assert mine.get(key) == pytest.approx(theirs.get(key), abs=1e-9), (scheme, key)


def test_trajectory_key_ignores_timing_fields_only():
    a = trajectory_key(BASE, 6)
    assert a == trajectory_key(replace(BASE, scheme="frc", delay=PERSISTENT, stragglers=3), 6)
    assert a != trajectory_key(replace(BASE, lr=0.1), 6)
    assert a != trajectory_key(replace(BASE, seed=4), 6)
    assert a != trajectory_key(BASE, 12)  # other partitions: other data split


def test_same_trajectory_tolerance_and_skips():
    z = SketchOracle(3, 4).table[:, 0, :].numpy()
    assert same_trajectory(z, z + 1e-12)
    assert not same_trajectory(z, z + 1e-6)
    skipped = z.copy()
    skipped[1] = np.nan
    assert not same_trajectory(z, skipped) and same_trajectory(skipped, skipped.copy())
