"""The fidelity table's second ratio: measured / simulated (the virtual clock alone)."""

import pytest

from gradcode.report.fidelity import fidelity, fidelity_html


def test_measured_over_simulated_next_to_measured_over_predicted():
    base = {"group": "g", "scheme": "frc", "cell_id": "c", "time_scale": 0.05}
    rows = [
        {**base, "duration": 2.2, "predicted_duration": 2.0, "simulated_duration": 1.0},
        {**base, "duration": 4.4, "predicted_duration": 4.0, "simulated_duration": 4.0},
        {**base, "duration": 3.0, "predicted_duration": 3.0, "simulated_duration": ""},  # old run
    ]
    (row,), _ = fidelity(rows)
    assert row["ratio_median"] == pytest.approx(1.1)
    assert row["ratio_simulated_median"] == pytest.approx((2.2 + 1.1) / 2)
    assert "measured / simulated" in fidelity_html([row])
    (old,), _ = fidelity([{k: v for k, v in r.items() if k != "simulated_duration"} for r in rows])
    assert old["ratio_simulated_median"] is None and "<td></td>" in fidelity_html([old])
