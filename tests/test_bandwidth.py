"""Time to target against bandwidth (experiments/harness/bandwidth.py): the time model's arithmetic."""

import pytest

from experiments.harness import bandwidth


def _curve(steps_to_one):
    """A loss falling linearly from 2.0 at step 0 to 1.0 at ``steps_to_one``, then 0.9."""
    return [{"step": 0, "loss": 2.0}, {"step": steps_to_one, "loss": 1.0},
            {"step": 2 * steps_to_one, "loss": 0.9}]


def _row(allreduce_s, codistill_s, exchange_s):
    def steady(s):
        return {"min": s, "median": s, "max": s}
    return {"plain_step_s": steady(0.1), "codistill_step_s": steady(codistill_s),
            "allreduce_s": allreduce_s, "exchange_s": exchange_s}


def test_times_ratios_and_the_crossover():
    curves = {bandwidth.SYNC_1X: {0: _curve(1000), 1: _curve(1000)},
              bandwidth.SYNC_2X: {0: _curve(500), 1: _curve(500)},
              bandwidth.CODISTILL: {0: _curve(700), 1: _curve(900)}}
    link = {"summary": {"rows": {"0.1": _row(0.2, 0.1, 5.0), "1": _row(0.02, 0.1, 0.5),
                                 "10": _row(0.0, 0.1, 0.0)}}}
    table = bandwidth.time_table({"arm_curves": curves}, link, reload_interval=50, target=1.0,
                                 compute="link")
    slow, fast = table["rows"]["0.1"], table["rows"]["10"]
    # 0.1 Gb/s: 1x 1000 x 0.1 = 100 s beats 2x 500 x 0.3 = 150 s; codistill 800 x 0.2 = 160 s
    assert slow["best_sync"] == bandwidth.SYNC_1X
    assert slow["times_s"][bandwidth.SYNC_2X]["mid"] == pytest.approx(150)
    assert slow["times_s"][bandwidth.CODISTILL]["mid"] == pytest.approx(160)
    assert slow["ratio"]["low"] == pytest.approx(700 * 0.2 / 100)
    assert slow["ratio"]["high"] == pytest.approx(900 * 0.2 / 100)
    # 1 Gb/s: 2x 500 x 0.12 = 60 s; codistill 800 x 0.11 = 88 s; 10 Gb/s: 50 s vs 80 s
    assert fast["best_sync"] == bandwidth.SYNC_2X and fast["ratio"]["mid"] == pytest.approx(1.6)
    assert table["crossover_gbps"]["codistillation"] == "loses at every bandwidth"
    assert "1.60 [1.40-1.80]" in bandwidth.format_table(table)


def test_a_crossover_is_interpolated_in_log_bandwidth():
    rows = {"0.1": {"ratio": {"mid": 0.5}}, "10": {"ratio": {"mid": 1.5}},
            "unshaped": {"ratio": {"mid": 2.0}}}
    assert bandwidth.crossover(rows)["gbps"] == pytest.approx(1.0)
    rows = {"1": {"ratio": {"mid": 0.8}}, "unshaped": {"ratio": {"mid": 1.2}}}
    assert bandwidth.crossover(rows) == {"gbps": None, "between": [1.0, "unshaped"]}


def test_an_arm_that_never_reaches_the_target_has_no_time():
    curves = {bandwidth.SYNC_1X: {0: _curve(1000)}, bandwidth.SYNC_2X: {0: _curve(500)},
              bandwidth.CODISTILL: {0: [{"step": 0, "loss": 2.0}, {"step": 10, "loss": 1.5}]}}
    link = {"summary": {"rows": {"1": _row(0.02, 0.1, 0.5)}}}
    timed = {"plain": {"values_s": [0.1, 0.1]}, "codistill": {"values_s": [0.1, 0.1]}}
    table = bandwidth.time_table({"arm_curves": curves, "step_times": timed}, link,
                                 reload_interval=50, target=1.0)
    assert table["rows"]["1"]["times_s"][bandwidth.SYNC_2X]["mid"] == pytest.approx(60)
    assert table["rows"]["1"]["times_s"][bandwidth.CODISTILL] is None
    assert table["rows"]["1"]["ratio"] is None
    assert "never" in bandwidth.format_table(table)


def test_no_ratio_when_no_synchronous_arm_reaches_the_target():
    never = [{"step": 0, "loss": 2.0}, {"step": 10, "loss": 1.5}]
    curves = {bandwidth.SYNC_1X: {0: never}, bandwidth.SYNC_2X: {0: never},
              bandwidth.CODISTILL: {0: _curve(700)}}
    link = {"summary": {"rows": {"1": _row(0.02, 0.1, 0.5), "10": _row(0.0, 0.1, 0.0)}}}
    table = bandwidth.time_table({"arm_curves": curves}, link, reload_interval=50, target=1.0,
                                 compute="link")
    row = table["rows"]["1"]
    assert row["best_sync"] is None and row["ratio"] is None
    assert row["times_s"][bandwidth.CODISTILL]["mid"] == pytest.approx(700 * 0.11)
    assert table["crossover_gbps"] == {
        "gbps": None, "between": None,
        "codistillation": "has no ratio: no synchronous arm reached the target"}
    text = bandwidth.format_table(table)
    assert "never" in text and "no synchronous arm reached the target" in text


def test_as_run_uses_every_arm_s_whole_step_over_the_link_adding_nothing():
    """The 2x arm's real two-worker step replaces 1x + all-reduce; no exchange is added to
    the codistilled step measured with its exchanges."""
    curves = {bandwidth.SYNC_1X: {0: _curve(1000)}, bandwidth.SYNC_2X: {0: _curve(500)},
              bandwidth.CODISTILL: {0: _curve(800)}}
    row = _row(allreduce_s=0.02, codistill_s=0.11, exchange_s=5.0)
    row["sync2x_mwms_step_s"] = {"min": 0.15, "median": 0.15, "max": 0.15}
    link = {"summary": {"rows": {"1": row}}}
    table = bandwidth.time_table({"arm_curves": curves}, link, reload_interval=50, target=1.0,
                                 compute="as_run")
    times = table["rows"]["1"]["times_s"]
    assert times[bandwidth.SYNC_2X]["mid"] == pytest.approx(500 * 0.15)  # not 500 x 0.12
    assert times[bandwidth.CODISTILL]["mid"] == pytest.approx(800 * 0.11)  # no 5.0 / 50
    assert table["rows"]["1"]["best_sync"] == bandwidth.SYNC_2X
    assert table["rows"]["1"]["ratio"]["mid"] == pytest.approx(88 / 75)
