"""Property: every argument list, valid or not, ends in exit 0 or a one-line error (exit 2).

The argument lists are generated from the CLI's *live* parameter definitions
(typer/click introspection): every subcommand, every option, its type, range,
flag-ness and multiplicity.  An option added tomorrow is fuzzed without
touching this file.  Values are drawn from:

* valid values, kept tiny where they set the cost of a run (``SMALL``),
* boundary and nonsense numbers (``min - 1``, ``max + 1``, ``nan``, ``inf``,
  ``1e308``, ``-2**63``, ``10**30``), odd strings (empty, ``=``, ``a=b=c``,
  NUL bytes, unicode, 10 kB of text),
* hints for options whose valid strings are names (``HINTS``: schemes,
  datasets, straggler specs ...), and prepared paths (``/dev/null``,
  ``/proc/x``, a file, missing folders, truncated CSVs, bad TOML).

Each call runs in-process through :func:`gradcode.cli.main` in a scratch
folder and must return within ``TIME_LIMIT`` CPU seconds.
"""

from __future__ import annotations

import contextlib
import io
import math
import shutil
import time
import typing
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradcode.cli import app, main
from gradcode.codes import REGISTRY

TIME_LIMIT = 20.0  # CPU seconds per call (tiny runs take well under 5 s)

#: Ranges of valid values for options that set the cost of a call (or must fit n).
SMALL = {
    "rounds": (1, 3),
    "workers": (4, 8),
    "n": (4, 8),
    "stragglers": (0, 3),
    "s": (0, 3),
    "trials": (1, 20),
    "patterns": (1, 50),
    "eval_every": (1, 3),
    "lr": (1e-3, 1.0),
    "momentum": (0.0, 0.9),
    "weight_decay": (0.0, 0.01),
    "deadline": (1.0, 20.0),
    "time_scale": (0.0, 0.01),
}
ODD_STRINGS = ["", " ", "=", "k=", "=v", ",", "a=b=c", "x", "-1", "nan", "1e999", "é≈ß",
               "a\x00b", "../..", "--", "a" * 10_000]  # fmt: skip
#: Plausible values of string options whose valid values are names or specs.
HINTS = {
    "scheme": list(REGISTRY),
    "dataset": ["breast_cancer", "wine", "digits"],
    "model": ["logreg", "mlp"],
    "partitioning": ["iid", "label_sorted", "label-sorted"],
    "optimizer": ["sgd", "nesterov", "adam"],
    "on_undecodable": ["fallback", "stop"],
    "backend": ["local"],  # not "ray": starting Ray is not a tiny run
    "device": ["cpu"],
    "delay": ["shifted-exp", "shifted-exp:a=1,mu=2", "pause:base=1,pause=2,prob=0.1",
              "pareto:alpha=2.5", "TRACE"],
    "persistent": ["k=2,kappa=5", "k=1,kappa=3,layout=aligned"],
    "bursty": ["p_slow=0.05,p_recover=0.3,kappa=5"],
    "crash": ["count=1,at_round=1", "workers=0+3", "count=1,rejoin_after=1"],
    "scheme_opt": ["l=2", "placement=cr", "d=2", "staleness_cap=none", "B=2", "rescale=true"],
    "stragglers": ["1", "1,2"],  # string-typed --stragglers (reproduce pgc)
    "workers": ["6", "4,6"],  # string-typed --workers (reproduce tandon2017)
    "data_dir": ["DIR"],
    "numerator": ["CELLS:p", "CELLS:q"],  # gradcode compare
    "denominator": ["CELLS:q"],
}  # fmt: skip
#: Nonsense for the same options (besides ``ODD_STRINGS``).
BAD_HINTS = {
    "scheme": ["nope"],
    "dataset": ["mnist", "cifar10", "amazon", "imagenet"],
    "model": ["cnn", "resnet", "transformer"],
    "partitioning": ["random"],
    "optimizer": ["lbfgs"],
    "on_undecodable": ["explode"],
    "backend": ["slurm"],
    "device": ["cuda", "tpu"],
    "address": ["127.0.0.1:1"],
    "delay": ["pareto:alpha=nan", "shifted-exp:mu=abc", "shifted-exp:zz=1", "shifted-exp:a",
              "gamma", ":", "trace:path=/nonexistent.csv", "shifted-exp:mu=0"],
    "persistent": ["k=99", "k=-1", "k=2,kappa=abc", "kappa=nan", "layout=diagonal", "kapa=2",
                   "k=1.5"],
    "bursty": ["p_slow=2", "p_slow=0,p_recover=0", "p_slow=x", "kappa=0.5"],
    "crash": ["workers=99", "count=x=1", "count=1,rejoin_after=0", "workers=a+b",
              "at_round=-1", "count=99"],
    "scheme_opt": ["placement=diagonal", "x=1", "=", "l=abc", "d=-1", "l=0"],
    "stragglers": ["0", "x", "-1", "1,,2"],
    "workers": ["1,x", "1", "0", "99999999"],
    "data_dir": ["/nonexistent/data"],
    "numerator": ["CELLS", "CELLS:nope", "MISSING:p", "CONFIG:p"],
    "denominator": ["CELLS:", ":q", "CELLS:nope"],
}  # fmt: skip


# ------------------------------------------------------------ introspection


def _commands(group=None, path=()):
    group = typer.main.get_command(app) if group is None else group
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


COMMANDS = dict(_commands())


def _annotation(param):
    """The Python type of a parameter (element type for repeatable options)."""
    desc = getattr(param, "type_descriptor", None)
    ann = getattr(desc, "annotation", None)
    if ann is None:  # older typer: map click's type name back
        names = {"integer": int, "integer range": int, "float": float, "float range": float,
                 "boolean": bool, "path": Path}  # fmt: skip
        ann = names.get(getattr(getattr(param, "type", None), "name", ""), str)
    if typing.get_origin(ann) in (list, tuple):
        ann = (typing.get_args(ann) or (str,))[0]
    if typing.get_origin(ann) is typing.Union:
        ann = next(a for a in typing.get_args(ann) if a is not type(None))
    return ann


def _bounds(param):
    lo = getattr(param, "min", None)
    hi = getattr(param, "max", None)
    if lo is None and hasattr(param, "type"):
        lo, hi = getattr(param.type, "min", None), getattr(param.type, "max", None)
    return lo, hi


def _numbers(param, cast, bad: bool):
    lo, hi = _bounds(param)
    small = SMALL.get(param.name)
    if not bad:
        a, b = small if small is not None else (0, 50)
        a = a if lo is None else max(a, lo)
        b = max(a, b if hi is None else min(b, hi))
        return (st.integers(int(a), int(b)) if cast is int else st.floats(a, b)).map(str)
    nonsense = [-1, 0, -(2**63), 2**64, 10**30]
    if cast is float:
        nonsense += [math.nan, math.inf, -math.inf, 1e308, -1e-300]
    if lo is not None:
        nonsense.append(lo - 1)
    if hi is not None:
        nonsense.append(hi + 1)
    if small is not None and hi is None:  # huge values only where a range rejects them
        nonsense = [x for x in nonsense if not x > small[1]]
    return st.sampled_from([str(x) for x in nonsense]) | st.sampled_from(ODD_STRINGS)


def _value(param, paths, bad: bool = False):
    """A strategy of the text given for ``param``: plausible, or (``bad``) nonsense."""
    ann = _annotation(param)
    name = param.name
    if ann is int or ann is float:
        return _numbers(param, ann, bad)
    if isinstance(ann, type) and issubclass(ann, Path):  # [0] is the plausible one
        pool = paths["config" if name == "config" else
                     "results" if name == "results_dir" else
                     "traces" if name in ("file", "files") else
                     "csv" if name == "csv" else "out"]  # fmt: skip
        return st.sampled_from(pool[1:] if bad else pool[:1])
    if bad:
        return st.sampled_from([_fill(h, paths) for h in BAD_HINTS.get(name, [])] + ODD_STRINGS)
    choices = getattr(getattr(param, "type", None), "choices", None)
    hints = [str(c) for c in (choices or [])] + HINTS.get(name, [])
    hints = [_fill(h, paths) for h in hints]
    if isinstance(param.default, str):
        hints.append(param.default)
    return st.sampled_from(hints or ODD_STRINGS)


def _fill(hint: str, paths) -> str:
    """A hint with its placeholder (``TRACE``, ``DIR``, ``CELLS:p`` ...) made a scratch path."""
    head, sep, tail = hint.partition(":")
    if sep and head in paths and isinstance(paths[head], str):
        return f"{paths[head]}:{tail}"
    return paths.get(hint, hint) if isinstance(paths.get(hint, hint), str) else hint


@st.composite
def argv_for(draw, path, cmd, paths):
    """An argument list for the command at ``path``: each option included or not."""
    argv = list(path)
    bad_rate = draw(st.sampled_from([0, 0, 0, 1, 2, 5]))  # tenths; half the lists: no nonsense
    for param in cmd.params:
        if param.param_type_name == "argument":
            if param.required or draw(st.booleans()):
                argv.append(draw(_value(param, paths, draw(st.integers(0, 9)) < bad_rate)))
            continue
        if not param.required and draw(st.integers(0, 3)):  # include about 1/4
            continue
        flag = draw(st.sampled_from(param.opts))
        if getattr(param, "is_flag", False):
            argv.append(flag)
            continue
        for _ in range(draw(st.integers(1, 2)) if param.multiple else 1):
            argv += [flag, draw(_value(param, paths, draw(st.integers(0, 9)) < bad_rate))]
    # cost control: the default --out of a command writes into the scratch folder
    if "--out" not in argv and any("--out" in p.opts for p in cmd.params):
        argv += ["--out", paths["out"][0]]
    if any("--quiet" in p.opts for p in cmd.params) and draw(st.booleans()):
        argv.append("--quiet")
    if draw(st.integers(0, 19)) == 0:  # now and then something the command does not know
        argv.insert(len(path) + draw(st.integers(0, len(argv) - len(path))), "--bogus")
    return argv


# ------------------------------------------------------------------ fixtures

TINY_GRID = """
workers = 4
rounds = 2
eval_every = 1
{extra}
[stragglers.shifted_exp]
base = "shifted-exp:a=1,mu=1"
[grid]
schemes = ["pgc"]
seeds = [{seed}]
tasks = ["breast_cancer/logreg"]
s = [1]
partitionings = ["iid"]
"""


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """Prepared inputs: good and broken configs, results folders, paths."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "trace.csv").write_text("1,2,3,4\n2,1,4,3\n")
    long = "".join(f"{r},{w},{L},{1 + 0.1 * w + 0.05 * L + 0.01 * r}\n"
                   for r in range(4) for w in range(8) for L in (0, 1, 2, 4))  # fmt: skip
    (root / "long.csv").write_text("round,worker,load,seconds\n" + long)
    (root / "data").mkdir()
    (root / "a_file.txt").write_text("not a folder\n")
    configs = {
        "good.toml": TINY_GRID.format(extra="", seed=0),
        "report5.toml": "report = 5\n" + TINY_GRID.format(extra="", seed=0),
        "grids12.toml": "grids = [1, 2]\n" + TINY_GRID.format(extra="", seed=0),
        "negseed.toml": TINY_GRID.format(extra="", seed=-1),
        "momentum.toml": TINY_GRID.format(extra="momentum = -0.5", seed=0),
        "nodata.toml": TINY_GRID.format(extra='data_dir = "/nonexistent"', seed=0),
        "bad.toml": "workers = \n",
        "binary.toml": "\udcff",
        "empty.toml": "",
    }
    for name, text in configs.items():
        (root / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    good = root / "results_good"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        with pytest.raises(SystemExit):
            main(["experiment", "run", str(root / "good.toml"), "--out", str(good), "--quiet"])
    for name, cut in (("results_cut", "results.csv"), ("rounds_cut", "rounds.csv")):
        shutil.copytree(good, root / name)
        text = (root / name / cut).read_text()
        (root / name / cut).write_text(text[: len(text) // 2])
    shutil.copytree(good, root / "rounds_missing")
    (root / "rounds_missing" / "rounds.csv").unlink()
    (root / "results_empty").mkdir()
    cells = "".join(f"t,iid,{k},3,x,{seed},True,{t}\n" for k, t in (("p", 1.0), ("q", 2.0))
                    for seed in (0, 1))  # fmt: skip
    (root / "cells.csv").write_text(
        "task,partitioning,scheme,s,straggler,seed,reached,time_to_target\n" + cells
    )
    return {
        "CELLS": str(root / "cells.csv"),
        "MISSING": str(root / "missing.csv"),
        "CONFIG": str(root / "good.toml"),
        "root": root,
        "TRACE": f"trace:path={root / 'trace.csv'}",
        "DIR": str(root / "data"),
        "out": [str(root / "out"), str(root / "out2" / "deep"), "/dev/null", "/proc/x",
                str(root / "a_file.txt"), str(root / "a_file.txt" / "below"), ""],
        # a file to write (gradcode compare --csv): never the "out" folder later calls use
        "csv": [str(root / "table.csv"), "/dev/null", "/proc/x", str(root / "a_file.txt" / "below"),
                str(root), ""],
        "traces": [str(root / "long.csv"), str(root / "trace.csv"), str(root / "missing.csv"),
                   str(root), "/dev/null"],
        "config": [*(str(root / n) for n in configs), str(root / "missing.toml"),
                   str(root), "/dev/null"],
        "results": [str(root / n) for n in ("results_good", "results_cut", "rounds_cut",
                    "rounds_missing", "results_empty", "nope", "a_file.txt")],
    }  # fmt: skip


def _call(argv: list[str]) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    t0 = time.process_time()  # CPU seconds: robust to a shared, busy machine
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code
        else:
            code = 0
    return code, out.getvalue(), err.getvalue(), time.process_time() - t0


#: Examples per command (default 15; fewer where each call renders figures).
EXAMPLES = {("train",): 30, ("experiment", "run"): 10, ("report",): 5,
            ("reproduce", "tandon2017"): 5, ("codes", "compare"): 8}  # fmt: skip
#: Commands whose work takes many seconds even when tiny: their argument parsing and
#: validation are fuzzed, the study itself is replaced by a stub returning no rows
#: (``test_cli.py`` runs each of them for real once).
STUDIES = {
    ("demo",): ("gradcode.reproduce.demo", "run_demo", []),
    ("reproduce", "pgc"): ("gradcode.reproduce.pgc_study", "run", []),
    ("reproduce", "ramamoorthy2024"): (
        "gradcode.reproduce.ramamoorthy2024",
        "run",
        {"speedup": {}},
    ),
}


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_every_argument_list_exits_0_or_2_without_traceback(path, scratch, monkeypatch):
    monkeypatch.chdir(scratch["root"])
    monkeypatch.setenv("GRADCODE_DATA_DIR", scratch["DIR"])
    codes: list[int] = []
    if path in STUDIES:
        module, name, result = STUDIES[path]
        monkeypatch.setattr(f"{module}.{name}", lambda *a, **k: result)

    @settings(
        max_examples=EXAMPLES.get(path, 15),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(argv=argv_for(path, COMMANDS[path], scratch))
    def check(argv):
        code, out, err, seconds = _call(argv)
        codes.append(code)
        assert code in (0, 2), (argv, code, err[-2000:])
        assert "Traceback" not in out + err, (argv, err[-2000:])
        if code == 2:
            errors = [ln for ln in err.splitlines() if ln.startswith("gradcode: error:")]
            assert len(errors) == 1, (argv, err[-2000:])
        assert seconds < TIME_LIMIT, (argv, seconds)

    check()
    # no command leaves a file where the next command's default --out folder goes
    assert not Path(scratch["out"][0]).is_file(), path
    # the property is not vacuous: some lists run, some are refused
    if path not in (("codes", "list"),):
        assert 0 in codes and 2 in codes, (path, codes)


def test_generator_covers_every_option():
    """The fuzzer sees each option of each command (a new option is fuzzed too)."""
    for path, cmd in COMMANDS.items():
        for param in cmd.params:
            assert param.opts, (path, param.name)
            for bad in (False, True):
                _value(param, {"out": ["o", "p"], "config": ["c", "d"], "results": ["r", "s"],
                               "traces": ["t", "u"], "csv": ["v", "w"]}, bad)  # fmt: skip


def test_a_failing_command_is_caught(monkeypatch):
    """The property can fail: an unexpected exception escapes ``main`` as a traceback."""
    import gradcode.cli_experiment as ce

    def boom(*a, **k):
        raise KeyError("bug")

    monkeypatch.setattr(ce, "report", boom)
    with pytest.raises(KeyError):
        _call(["report", "."])
