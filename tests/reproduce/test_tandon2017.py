import csv

import pytest

from gradcode.reproduce.tandon2017 import Tandon2017Config, run


def test_reproduction_writes_csv_and_figure(tmp_path):
    rows = run(Tandon2017Config(ns=(6, 12), rounds=400), tmp_path)
    assert (tmp_path / "tandon2017.png").stat().st_size > 10_000
    with open(tmp_path / "tandon2017.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)

    def t(model, n, s, scheme):
        (row,) = [
            r for r in rows if (r["model"], r["n"], r["s"], r["scheme"]) == (model, n, s, scheme)
        ]
        return row["mean_time"]

    for model in ("shifted-exp", "pause"):
        # s = 0: every scheme is plain synchronous GD on the same draws.
        assert t(model, 12, 0, "crc") == pytest.approx(t(model, 12, 0, "dgd"))
    # Load-proportional tails: redundancy costs more than it saves.
    assert t("shifted-exp", 12, 2, "crc") > t("shifted-exp", 12, 0, "dgd")
    # Load-independent pauses: FRC tolerating one straggler beats waiting for all.
    assert t("pause", 12, 1, "frc") < 0.5 * t("pause", 12, 0, "dgd")
    # FRC only where (s + 1) | n.
    assert not [r for r in rows if r["scheme"] == "frc" and r["n"] % (r["s"] + 1)]
