"""Why the advisor recommends what it recommends, in two or three sentences.

The reason names the trade the recommendation wins (docs/clock.md, "When is
redundancy cheap?"): what its extra load costs per worker-round on this
cluster (the regime's ``time(load L) / time(load 1)``), what DGD loses waiting
for its slowest worker, what extra rounds an approximate or stale scheme needs
(its convergence factor), persistently slow or crashed workers, and how far
behind the runner-up is.
"""

from __future__ import annotations

#: Extra cost per worker-round of a scheme's load below which redundancy is "nearly free".
CHEAP = 0.15


def _name(c) -> str:
    return f"{c.scheme} at s={c.s}"


def _ids(items, k: int = 6) -> str:
    ids = [str(i) for i in items]
    return ", ".join(ids[:k]) + (f" and {len(ids) - k} more" if len(ids) > k else "")


def explain(best, runner, dgd, regime) -> str:
    """Two or three sentences: the recommendation's trade, the facts behind it, the runner-up."""
    what = "time to target"
    out = []
    if best.time_to_target is None:
        out.append(
            "No candidate finishes every round with a known convergence factor; "
            f"{_name(best)} is shown for reference only."
        )
    elif best.scheme == "dgd":
        out.append(
            "Waiting for every worker is best here: DGD's wait for its slowest worker "
            f"({best.round_time:.3g} s per round against a typical worker's {regime.median:.3g} s) "
            "costs less than any scheme's extra load or extra rounds."
        )
    else:
        if dgd.time_to_target:
            gain = 1 - best.time_to_target / dgd.time_to_target
            head = f"{_name(best)} is predicted {gain:.0%} less {what} than DGD "
            head += f"({best.round_time:.3g} s vs {dgd.round_time:.3g} s per round)"
        else:
            head = f"{_name(best)} is predicted the fastest ({best.round_time:.3g} s per round; "
            head += f"DGD never finishes {1 - dgd.decodable:.0%} of the rounds)"
        extra = regime.ratio(best.load) - 1 if best.load > regime.reference_load else 0.0
        wait = dgd.round_time / regime.median - 1 if regime.median > 0 else 0.0
        if best.load > 1 and extra <= CHEAP:
            out.append(
                f"Redundancy is nearly free here: load {best.load:g} costs {extra:+.0%} per "
                f"worker-round (median), while DGD waits {wait:+.0%} beyond the typical worker "
                f"for its slowest; {head}."
            )
        elif best.load > 1:
            out.append(
                f"Load {best.load:g} costs {extra:+.0%} per worker-round, repaid because the tail "
                f"is heavy (p99 = {regime.tail['p99']:.3g}x the median; DGD waits {wait:+.0%} "
                f"beyond the typical worker); {head}."
            )
        elif not best.fresh:
            out.append(
                f"{head}: it keeps load 1 and does not wait for the slowest {best.s}, and needs "
                f"{best.rounds_factor:.2f}x DGD's rounds ({best.rounds_factor_from}), still less "
                "in all."
            )
        else:
            out.append(f"{head}.")
    facts = []
    if regime.slow_workers:
        facts.append(
            f"worker(s) {_ids(w for w, _ in regime.slow_workers)} are persistently slow "
            f"(median {max(x for _, x in regime.slow_workers):.3g}x the typical worker)"
        )
    if regime.crashes:
        facts.append(
            f"worker(s) {_ids(c['worker'] for c in regime.crashes)} stop reporting "
            f"(from round {min(c['from_round'] for c in regime.crashes)}), "
            "so a scheme must tolerate them"
        )
    if facts:
        out.append(("; ".join(facts)).capitalize() + ".")
    if runner is not None and runner.time_to_target and best.time_to_target:
        d = runner.time_to_target / best.time_to_target - 1
        out.append(f"Runner-up: {_name(runner)} ({d:+.1%} {what}).")
    return " ".join(out)
