"""Time to target against the bandwidth between machines: steps from curves, steps' cost from a link.

Each arm's steps to the target come from the seeds' curves of a time-to-target run
(``experiments/time_to_target.py``); a step's compute from one of two timings
(``compute``): the time-to-target run's own (each arm's step timed alone, the default) or
the link benchmark's (timed while the link was measured); what the link adds at each
bandwidth from ``benchmarks/interconnect.py`` on a shaped veth pair:

  * sync 1x (one machine): the 1x step;
  * sync 2x (two machines): the 1x step plus the measured all-reduce of the gradients
    between two workers over the link;
  * 2-way codistillation (two machines): a codistilled group's step plus one snapshot
    exchange (publish, poll, copy across, load) every reload interval, charged as if
    training waited for it (it runs in the background, so this is an upper bound).

Or ``compute="as_run"``: every arm's whole step as the link benchmark ran it over the link,
nothing added: the 2x arm's real two-worker MultiWorkerMirroredStrategy step (graph mode, since
XLA cannot compile its collectives on CPU; the other arms run under XLA), and the codistilled
group's step with its background exchanges.

Spreads: steps over seeds (min/max) times step times over timing runs (min/max).
"""

from __future__ import annotations

import math
from typing import Sequence

from experiments.harness import lm_experiments
from tf_codistill.runner import evaluation

SYNC_1X = "sync SGD, batch 1x (baseline)"
SYNC_2X = "sync SGD, batch 2x (lr x sqrt 2)"
CODISTILL = "2-way codistillation"
GOAL = 0.7  # the goal: codistillation's time at most this share of the best sync arm's


def reachable_loss(curves: dict) -> float:
    """The lowest loss every seed's curve reaches."""
    return max(evaluation.best_loss(c) for c in curves.values())


def steps_to(curves: dict, target: float) -> list[float | None]:
    return [lm_experiments.reach(c, target)[1] for c in curves.values()]


def _range(values: Sequence[float]) -> dict:
    return {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}


COMPUTE_SOURCES = ("curves", "link", "as_run")


def compute_seconds(source: str, curves: dict, row: dict) -> dict:
    """{"plain", "codistill": {min, median, max}} seconds of a step's compute on one machine:
    the time-to-target run's timings (``curves``' step_times) or the link benchmark's
    (its summary ``row`` at one bandwidth); "as_run" adds "sync2x", the real two-worker step."""
    if source == "curves":
        return {name: _spread(curves["step_times"][name]["values_s"])
                for name in ("plain", "codistill")}
    if source == "link":
        return {"plain": row["plain_step_s"], "codistill": row["codistill_step_s"]}
    if source == "as_run":
        return {"plain": row["plain_step_s"], "codistill": row["codistill_step_s"],
                "sync2x": row["sync2x_mwms_step_s"]}
    raise ValueError(f"compute={source!r}: choose one of {COMPUTE_SOURCES}.")


def _spread(values):
    ordered = sorted(values)
    return {"min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1]}


def arm_step_seconds(compute: dict, row: dict, reload_interval: int) -> dict:
    """{arm: {min, median, max}} seconds per step at one bandwidth: ``compute`` (see
    ``compute_seconds``) plus what the link adds (interconnect summary ``row``); steps
    measured over the link (``compute["sync2x"]``) already hold it."""
    plain, codistill = compute["plain"], compute["codistill"]
    if "sync2x" in compute:
        return {SYNC_1X: dict(plain), SYNC_2X: dict(compute["sync2x"]),
                CODISTILL: dict(codistill)}
    exchange = row["exchange_s"] / reload_interval
    return {SYNC_1X: dict(plain),
            SYNC_2X: {k: plain[k] + row["allreduce_s"] for k in ("min", "median", "max")},
            CODISTILL: {k: codistill[k] + exchange for k in ("min", "median", "max")}}


def time_table(curves: dict, link: dict, reload_interval: int,
               target: float | None = None, compute: str = "curves") -> dict:
    """Time to ``target`` (default: the loss every seed of the 1x arm reaches) per arm and
    bandwidth, with codistillation's ratio to the best synchronous arm at each bandwidth.
    ``curves``: a time-to-target result (its ``arm_curves`` and ``step_times``)."""
    arm_curves = curves["arm_curves"]
    target = reachable_loss(arm_curves[SYNC_1X]) if target is None else target
    steps = {arm: steps_to(arm_curves[arm], target) for arm in (SYNC_1X, SYNC_2X, CODISTILL)}
    rows = {}
    for rate, link_row in link["summary"]["rows"].items():
        per_step = arm_step_seconds(compute_seconds(compute, curves, link_row), link_row,
                                    reload_interval)
        times = {}
        for arm, seeds in steps.items():
            if any(s is None for s in seeds):
                times[arm] = None
                continue
            s, t = _range(seeds), per_step[arm]
            times[arm] = {"low": s["min"] * t["min"], "mid": s["mean"] * t["median"],
                          "high": s["max"] * t["max"], "step_s": t}
        reached = [a for a in (SYNC_1X, SYNC_2X) if times[a]]
        best = min(reached, key=lambda a: times[a]["mid"]) if reached else None
        mine, theirs = times[CODISTILL], times[best] if best else None
        rows[rate] = {"times_s": times, "best_sync": best,
                      "ratio": None if mine is None or theirs is None else {
                          "low": mine["low"] / theirs["high"], "mid": mine["mid"] / theirs["mid"],
                          "high": mine["high"] / theirs["low"]}}
    return {"target_loss": target, "compute": compute,
            "steps": {arm: {"per_seed": s, **(_range(s) if None not in s else {})}
                      for arm, s in steps.items()},
            "rows": rows, "crossover_gbps": crossover(rows)}


def _gbps(rate: str) -> float:
    return math.inf if rate == "unshaped" else float(rate)


def crossover(rows: dict) -> dict:
    """Where codistillation's mid ratio to the best sync arm crosses 1.0, interpolated in
    log bandwidth between measured links; 'below'/'above' when it stays on one side."""
    points = sorted(((_gbps(r), row["ratio"]["mid"]) for r, row in rows.items()
                     if row["ratio"]), key=lambda p: p[0])
    if not points:
        return {"gbps": None, "between": None,
                "codistillation": f"has no ratio: {_no_ratio_reason(rows)}"}
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if (y0 - 1) * (y1 - 1) <= 0 and y0 != y1:
            if math.isinf(x1):
                return {"gbps": None, "between": [x0, "unshaped"]}
            fraction = (y0 - 1) / (y0 - y1)
            gbps = 10 ** (math.log10(x0) + fraction * (math.log10(x1) - math.log10(x0)))
            return {"gbps": gbps, "between": [x0, x1]}
    side = "wins" if points and points[-1][1] < 1 else "loses"
    return {"gbps": None, "between": None, "codistillation": f"{side} at every bandwidth"}


def _no_ratio_reason(rows: dict) -> str:
    if not rows:
        return "no link was measured"
    if any(row["best_sync"] is None for row in rows.values()):
        return "no synchronous arm reached the target"
    return "it never reached the target"


def format_table(table: dict) -> str:
    lines = [f"time to {table['target_loss']:.4f} (s), compute timed by the {table['compute']} "
             "run: seeds' mean steps x median step "
             "[seeds' min x fastest repeat, max x slowest]; ratio: codistillation / the "
             "best sync arm at that bandwidth",
             f"{'link':>9} {'sync 1x (1 machine)':>24} {'sync 2x (2 machines)':>24} "
             f"{'codistill (2 machines)':>24} {'best sync':>9} {'ratio':>18}"]
    for rate, row in table["rows"].items():
        label = "unshaped" if rate == "unshaped" else f"{rate} Gb/s"
        cells = [_cell(row["times_s"][arm]) for arm in (SYNC_1X, SYNC_2X, CODISTILL)]
        ratio = row["ratio"]
        ratio_text = "-" if ratio is None else (
            f"{ratio['mid']:.2f} [{ratio['low']:.2f}-{ratio['high']:.2f}]"
            + (" tie" if ratio["low"] <= 1 <= ratio["high"] else ""))
        best = {SYNC_1X: "1x", SYNC_2X: "2x", None: "none"}[row["best_sync"]]
        lines.append(f"{label:>9} {cells[0]:>24} {cells[1]:>24} {cells[2]:>24} {best:>9} "
                     f"{ratio_text:>18}")
    cross = table["crossover_gbps"]
    if cross.get("gbps"):
        lines.append(f"crossover (ratio 1.0): {cross['gbps']:.2g} Gb/s, between "
                     f"{cross['between'][0]:g} and {cross['between'][1]:g} Gb/s")
    elif cross.get("between"):
        lines.append(f"crossover between {cross['between'][0]:g} Gb/s and the unshaped link")
    else:
        lines.append(f"no crossover: codistillation {cross['codistillation']}")
    return "\n".join(lines)


def _cell(time: dict | None) -> str:
    if time is None:
        return "never"
    return f"{time['mid']:.0f} [{time['low']:.0f}-{time['high']:.0f}]"


def plot(table: dict, path: str, title: str) -> None:
    """Codistillation's time over the best sync arm's against bandwidth, crossover marked."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    rows = [(r, row["ratio"]) for r, row in table["rows"].items() if row["ratio"]]
    shaped = sorted((float(r), q) for r, q in rows if r != "unshaped")
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    axes.set_xscale("log")  # before the ticks: setting the scale replaces them
    xs = [x for x, _ in shaped]
    mids = [q["mid"] for _, q in shaped]
    errors = [[q["mid"] - q["low"] for _, q in shaped], [q["high"] - q["mid"] for _, q in shaped]]
    axes.errorbar(xs, mids, yerr=errors, marker="o", capsize=4,
                  label="2-way codistillation / best sync arm (3 seeds)")
    unshaped = dict(rows).get("unshaped")
    if unshaped and xs:
        x = xs[-1] * 10
        axes.errorbar([x], [unshaped["mid"]], yerr=[[unshaped["mid"] - unshaped["low"]],
                                                    [unshaped["high"] - unshaped["mid"]]],
                      marker="s", color="gray", capsize=4, label="unshaped veth pair")
        axes.set_xticks([*xs, x], [*(f"{v:g}" for v in xs), "unshaped"])
        axes.minorticks_off()
    axes.axhline(1.0, color="black", linewidth=1, label="equal time")
    axes.axhline(GOAL, color="green", linestyle=":", label=f"goal {GOAL}x")
    cross = table["crossover_gbps"]
    if cross.get("gbps"):
        axes.axvline(cross["gbps"], color="red", linestyle="--",
                     label=f"crossover {cross['gbps']:.2g} Gb/s")
    axes.set_xlabel("link bandwidth between the two machines (Gb/s)")
    axes.set_ylabel("time to target: codistillation / best sync")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
