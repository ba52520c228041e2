"""``--scheme auto``: the decision on synthetic times, switching, exactness, crashes, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import gradcode
from gradcode.advisor.factors import factor_for
from gradcode.cli import main
from gradcode.codes import make_code
from gradcode.runtime.auto import AutoConfig, Choice, at_load_one, decide
from gradcode.runtime.config import DelaySpec, RunConfig
from gradcode.runtime.run import run
from gradcode.runtime.signature import sketch_run


def _records(times, loads=None, compute=None):
    times = np.asarray(times, dtype=float)
    loads = np.ones_like(times) if loads is None else np.broadcast_to(loads, times.shape)
    out = []
    for i, row in enumerate(times):
        rec = {
            "worker_times": [None if not np.isfinite(x) else float(x) for x in row],
            "worker_load": [float(x) for x in loads[i]],
        }
        if compute is not None:
            rec["worker_compute"] = [float(x) for x in np.broadcast_to(compute, times.shape)[i]]
        out.append(rec)
    return out


# ------------------------------------------------------------------ the decision


def test_equal_latency_bound_workers_pick_the_brute_force_best():
    """Every worker takes 1 s, 0.01 s of it computing one partition: a scheme's round
    costs 0.99 + 0.01 x load, times its convergence factor; brute force over every
    candidate gives DGD (nothing to gain from redundancy or from dropping workers)."""
    n, max_s, names = 6, 2, ("dgd", "is_sgd", "frc", "crc")
    recs = _records(np.ones((8, n)), compute=0.01)
    brute = {}
    for name in names:
        for s in range(max_s + 1):
            if name == "dgd" and s:
                continue
            load = make_code(name, n, s, rng=np.random.default_rng(0)).load
            brute[name, s] = (0.99 + 0.01 * load) * factor_for(name, s).value
    best = min(brute, key=brute.get)
    d = decide(recs, Choice("is_sgd", 2), AutoConfig(candidates=names), max_s, first=True)
    assert (d.choice.scheme, d.choice.s) == best == ("dgd", 0)
    assert "end of warm-up" in d.reason and "dgd/0" in d.reason


def test_two_persistently_slow_workers_get_a_scheme_that_tolerates_them():
    rng = np.random.default_rng(0)
    times = 1.0 + rng.exponential(0.2, (10, 12))
    times[:, [3, 7]] *= 5.0
    d = decide(_records(times), Choice("dgd", 0), AutoConfig(), max_s=3, first=True)
    assert d.choice.scheme != "dgd" and d.choice.s >= 2, d
    dgd_round = times.max(axis=1).mean()
    assert f"{dgd_round:.3g}" not in d.reason.split("per DGD")[0]  # names the pick's own time


def test_times_are_brought_to_load_one_by_load_or_by_measured_compute():
    t, c = at_load_one(_records([[4.0, 8.0]], loads=[[2.0, 4.0]]))
    assert t.tolist() == [[2.0, 2.0]] and c is None
    t, c = at_load_one(_records([[5.0]], loads=[[4.0]], compute=[[4.0]]))
    assert t.tolist() == [[2.0]] and c.tolist() == [[1.0]]  # 1 s fixed + 1 s per partition


def _near_tie(extra: float, rounds: int = 6):
    """Fixed 1 s + 0.01 s per partition, worker 0 ``extra`` s slower: DGD waits for it,
    FRC at s=1 (load 2) does not -- a gain of about ``extra`` / (1 + extra)."""
    t = np.full((rounds, 6), 1.0)
    t[:, 0] += extra
    return _records(t, compute=0.01)


def test_hysteresis_keeps_the_scheme_within_the_margin_and_switches_beyond_it():
    cfg = AutoConfig(candidates=("dgd", "frc"), margin=0.1)
    recs = _near_tie(0.1)  # dgd 1.1 s, frc/1 1.01 s: 8 % less
    kept = decide(recs, Choice("dgd", 0), cfg, max_s=1)
    assert kept.choice == Choice("dgd", 0) and kept.reason is None
    assert "under the 10% margin" in kept.note
    assert decide(recs, Choice("dgd", 0), cfg, max_s=1, first=True).choice == Choice("frc", 1)
    loose = AutoConfig(candidates=("dgd", "frc"), margin=0.05)
    sw = decide(recs, Choice("dgd", 0), loose, max_s=1)
    assert (
        sw.choice == Choice("frc", 1) and "re-check" in sw.reason and "1.1 s per round" in sw.reason
    )


def test_no_flapping_when_predictions_stay_within_the_margin():
    """The regime wobbles around the tie (the slow worker's extra 0..0.09 s: DGD best
    below 0.01 s, FRC above, never by 10 %): every re-check keeps the scheme in force,
    though the advisor's pick alternates."""
    cfg = AutoConfig(candidates=("dgd", "frc"), margin=0.1)
    rng = np.random.default_rng(1)
    notes = []
    for start in (Choice("dgd", 0), Choice("frc", 1)):
        current = start
        for extra in [0.0, 0.09, *rng.uniform(0.0, 0.09, 10)]:
            d = decide(_near_tie(float(extra)), current, cfg, max_s=1)
            current = d.choice
            notes.append(d.note)
        assert current == start
    assert any("still the advisor's pick" in n for n in notes)
    assert any("under the 10% margin" in n for n in notes)


def test_a_dead_worker_forces_a_switch_without_waiting_for_the_margin():
    t = np.full((6, 6), 1.0)
    t[3:, 2] = np.inf  # worker 2 stops reporting
    d = decide(_records(t), Choice("dgd", 0), AutoConfig(candidates=("dgd", "frc")), max_s=1)
    assert d.choice == Choice("frc", 1) and "no longer decodes" in d.reason


def test_bad_auto_configs_are_one_line_errors():
    with pytest.raises(ValueError, match="warmup must be an integer >= 1"):
        AutoConfig(warmup=0)
    with pytest.raises(ValueError, match="unknown scheme 'zz'"):
        AutoConfig(candidates=("dgd", "zz"))
    assert RunConfig(scheme="auto", backend="ray").auto == AutoConfig()  # test_auto_ray.py
    with pytest.raises(ValueError, match="--scheme-opt cannot be given"):
        RunConfig(scheme="auto", scheme_options=(("l", 2),))
    with pytest.raises(ValueError, match="need --scheme auto"):
        RunConfig(scheme="frc", auto="warmup=2")
    with pytest.raises(ValueError, match="has no signature"):
        sketch_run(RunConfig(scheme="auto"))
    assert RunConfig(scheme="auto", auto="warmup=2,candidates=dgd+frc").auto == AutoConfig(
        warmup=2, candidates=("dgd", "frc")
    )


# ------------------------------------------------------------------ runs


def _cfg(**kw):
    """n = 6 on breast_cancer/logreg; worker 0 is persistently 5x slow with no noise, so
    DGD waits 5 s and FRC at s=1 2 s: the switch at round 3 is certain."""
    base = dict(
        scheme="auto", workers=6, stragglers=1, dataset="breast_cancer", model="logreg",
        rounds=10, eval_every=5, lr=0.5, dtype="float64",
        delay=DelaySpec("pause:base=1,pause=0,prob=0", persistent="k=1,kappa=5"),
        auto=AutoConfig(warmup=3, every=4, warmup_scheme="dgd", candidates=("dgd", "frc")),
    )  # fmt: skip
    base.update(kw)
    return RunConfig(**base)


def _log(path):
    return [json.loads(ln) for ln in (path / "rounds.jsonl").read_text().splitlines()]


def test_a_switch_to_an_exact_scheme_keeps_training_exact(tmp_path):
    auto = run(_cfg(), tmp_path / "auto")
    dgd = run(_cfg(scheme="dgd", auto=None), tmp_path / "dgd")
    recs = _log(tmp_path / "auto")
    assert [r["scheme"] + "/" + str(r["s"]) for r in recs] == ["dgd/0"] * 3 + ["frc/1"] * 7
    sw = recs[3]["switch"]
    assert sw["from"] == "dgd/0" and sw["to"] == "frc/1"
    assert "5 s per round" in sw["reason"] and "2 s per round" in sw["reason"]
    assert all(r["exact"] for r in recs) and "auto_check" in recs[7]
    assert [r["duration"] for r in recs] == [5.0] * 3 + [2.0] * 7
    torch.testing.assert_close(auto.weights, dgd.weights, rtol=1e-12, atol=1e-12)
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert summary["switches"] == [{"round": 3, "from": "dgd/0", "to": "frc/1"}]
    config = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert config["scheme"] == "auto" and config["auto"]["warmup"] == 3


def test_workers_dying_at_the_switch_neither_hang_nor_lose_data(tmp_path):
    """Workers 0 and 1 (one FRC group at s=1) crash in the very round auto switches to
    frc/1: those rounds fall back; the next check sees them dead and moves to frc/2,
    which decodes exactly without them."""
    crash = DelaySpec("pause:base=1,pause=0,prob=0", persistent="k=1,kappa=5",
                      crash="workers=0+1,at_round=3")  # fmt: skip
    auto = AutoConfig(warmup=3, every=3, warmup_scheme="dgd", candidates=("dgd", "frc"))
    res = run(_cfg(stragglers=2, rounds=12, delay=crash, auto=auto), tmp_path)
    recs = _log(tmp_path)
    assert [r["round"] for r in recs] == list(range(12)) and res.rounds == 12
    assert recs[3]["switch"]["to"] == "frc/1"
    assert not any(r["ready"] for r in recs[3:6])  # the crashed group: best-effort rounds
    assert recs[6]["switch"] == {**recs[6]["switch"], "from": "frc/1", "to": "frc/2"}
    assert "no longer decodes" in recs[6]["switch"]["reason"]
    assert all(r["ready"] and r["exact"] for r in recs[6:])
    assert np.isfinite(res.weights.numpy()).all()


@pytest.mark.parametrize("stop_at", [2, 6])  # a checkpoint before / after the switch
def test_resume_across_a_switch_is_bit_for_bit(tmp_path, stop_at):
    noisy = DelaySpec("shifted-exp:a=1,mu=2", persistent="k=1,kappa=5")
    kw = dict(dtype="float32", delay=noisy, checkpoint_every=2)
    full = run(_cfg(rounds=10, **kw), tmp_path / "full")
    run(_cfg(rounds=stop_at, **kw), tmp_path / "part")
    resumed = run(_cfg(rounds=10, **kw), tmp_path / "part", resume=True)
    torch.testing.assert_close(resumed.weights, full.weights, atol=0, rtol=0)

    def strip(recs):  # the part run also evaluated at its last round
        drop = ("compute_seconds", "train_loss", "test_")
        return [{k: v for k, v in r.items() if not k.startswith(drop)} for r in recs]

    a, b = strip(_log(tmp_path / "full")), strip(_log(tmp_path / "part"))
    assert a == b and any("switch" in r for r in a)


def test_a_checkpoint_without_the_scheme_in_force_is_refused(tmp_path):
    from gradcode.runtime.checkpoint import load_checkpoint, save_checkpoint

    run(_cfg(rounds=4, checkpoint_every=2), tmp_path)
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    del ck["auto"]
    save_checkpoint(tmp_path / "checkpoint.pt", ck)
    with pytest.raises(ValueError, match="records no scheme in force"):
        run(_cfg(rounds=6, checkpoint_every=2), tmp_path, resume=True)


# ------------------------------------------------------------------ front ends


def test_cli_auto_runs_and_refuses_bad_combinations_in_one_line(tmp_path, capsys):
    def cli(*argv):
        with pytest.raises(SystemExit) as exc:
            main(list(argv))
        return exc.value.code, capsys.readouterr()

    base = ("train", "--scheme", "auto", "-n", "6", "-s", "1", "--rounds", "6", "--quiet")
    code, cap = cli(*base, "--auto", "warmup=2,every=2", "--out", str(tmp_path / "ok"))
    assert code == 0 and cap.out.startswith("auto: 6 rounds")
    recs = _log(tmp_path / "ok")
    assert all("scheme" in r and "s" in r for r in recs) and "auto_check" in str(recs[2])
    for extra, needle in [
        (("--scheme-opt", "l=2"), "--scheme-opt cannot be given"),
        (("--auto", "warmup=0"), "warmup must be an integer >= 1"),
        (("--auto", "zz=1"), "unknown key 'zz'"),
        (("--stale-correction", "momentum"), "no --stale-correction"),
    ]:
        code, cap = cli(*base, *extra, "--out", str(tmp_path / "bad"))
        assert code == 2 and len(cap.err.strip().splitlines()) == 1, (extra, cap.err)
        assert needle in cap.err and "Traceback" not in cap.err


def test_fit_accepts_scheme_auto():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(96, 4, generator=g)
    y = (X[:, 0] > 0).long()
    torch.manual_seed(0)
    res = gradcode.fit(nn.Linear(4, 2), (X, y), scheme="auto", workers=4, stragglers=1,
                       rounds=4, auto="warmup=2,every=2")  # fmt: skip
    assert res.rounds == 4 and all("scheme" in h for h in res.history)
    with pytest.raises(TypeError, match="auto must be"):
        gradcode.fit(nn.Linear(4, 2), (X, y), scheme="auto", auto=3)
