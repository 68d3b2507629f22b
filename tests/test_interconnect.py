"""benchmarks/interconnect.py's link: namespaces, a tc-shaped veth pair, traffic across it.

The link tests need root, unshare, nsenter, taskset, ip and tc (CI has them) and skip naming
what is missing elsewhere. Their assertions hold by construction under any load: a token
bucket at R bits/s cannot move B bytes in less than (B - burst) * 8 / R seconds, an
all-reduce between two workers moves at least the gradients' bytes each way, and nothing of
the link survives it.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments.harness import interconnect, lm_experiments, netns
from tf_codistill.config import layout

MISSING = netns.missing_requirements()
needs_link = pytest.mark.skipif(
    bool(MISSING), reason="a shaped link needs " + ", ".join(MISSING))
RATE_GBPS = 0.1  # 100 Mb/s
BURST_BYTES = 64 * 1024  # the bucket the link allows at this rate (netns.Link.shape)


def test_missing_requirements_are_named_with_their_package(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(netns.shutil, "which", lambda tool: None if tool == "tc" else tool)
    missing = netns.missing_requirements()
    assert missing == ["root (running as uid 1000; namespaces, veth and tc need it)",
                       "tc (install iproute2)"]
    with pytest.raises(RuntimeError, match="needs root .*tc \\(install iproute2\\)"):
        netns.Link()


def _publish_snapshot(directory, megabytes=1.0):
    from tf_codistill.exchange import snapshots
    rows = int(megabytes * 1e6 / 4 / 256)
    weights = [("000/kernel", np.random.default_rng(0).normal(size=(rows, 256)).astype("f4"))]
    snapshots.PeerPublisher(str(directory)).publish(1, weights)
    return 4 * rows * 256


@needs_link
@pytest.mark.slow  # starts two TensorFlow processes in the namespaces
def test_a_shaped_link_bounds_an_exchange_and_leaves_nothing(tmp_path):
    size = _publish_snapshot(tmp_path / "weights")
    with netns.Link() as link:
        exchange = interconnect.Exchange(link, str(tmp_path / "weights"), str(tmp_path / "x"))
        fast = exchange.once()
        sent = link.tx_bytes(0)
        link.shape(RATE_GBPS)
        slow = exchange.once()
        assert link.tx_bytes(0) - sent >= size  # the snapshot crossed the veth pair
        assert "tbf" in link.tc(0, "qdisc", "show") and "tbf" in link.tc(1, "qdisc", "show")
    assert link.is_gone()
    for record in (fast, slow):
        assert record["link_bytes"] >= size and record["load_s"] > 0
    assert slow["step"] == 2 and slow["snapshot_bytes"] >= size
    assert slow["transfer_s"] >= (size - BURST_BYTES) * 8 / (RATE_GBPS * 1e9)


@needs_link
@pytest.mark.slow  # a two-worker training group
def test_the_sync_arm_all_reduces_across_the_shaped_link(tmp_path):
    flags = ["--flagfile=configs/experiment_hmm.flags", "--units=128", "--embedding_dim=32",
             "--vocab_size=128", "--source_states=8", "--seq_len=8", "--batch_size=4"]
    variants = interconnect.Variants(flags)
    loops = interconnect.schedule([RATE_GBPS], repeats=1)
    assert [counted for _, counted in loops] == [False, False, True]
    steps_per_loop = 5
    with netns.Link() as link:
        records = interconnect.time_sync2x(link, variants, str(tmp_path / "sync"), loops,
                                           steps_per_loop, 600)
    assert link.is_gone()
    assert [r["step"] for r in records] == [5, 10, 15]
    record = records[-1]
    parameter_bytes = lm_experiments.student_parameter_bytes(
        layout.group_dir(str(tmp_path / "sync"), 0))
    assert parameter_bytes > 4 * BURST_BYTES
    # each worker sends its peer at least the gradients' bytes every step
    assert record["link_bytes"] >= 2 * parameter_bytes * steps_per_loop
    assert record["step_s"] >= (parameter_bytes - BURST_BYTES) * 8 / (RATE_GBPS * 1e9)


@needs_link
def test_the_link_is_gone_after_an_error_and_after_its_owner_is_killed(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with netns.Link() as link:
            link.shape(1.0)
            sleeper = link.popen(0, ["sleep", "600"])
            1 / 0
    assert link.is_gone() and sleeper.poll() is not None
    owner = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom experiments.harness import netns\n"
         "link = netns.Link(); link.open(); link.popen(1, ['sleep', '600'])\n"
         "print(*link.namespaces, flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    namespaces = {int(n) for n in owner.stdout.readline().split()}
    assert len(namespaces) == 2
    owner.kill()  # kill -9: no cleanup code runs
    owner.wait()
    deadline = time.monotonic() + 10
    while namespaces & netns.network_namespaces_in_use() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not namespaces & netns.network_namespaces_in_use()


def test_the_summary_subtracts_the_graph_step_and_scales_per_byte():
    def loops(rate, *steps):
        return [{"rate": rate, "counted": True, "step": 25 * (i + 1), "step_s": s,
                 "link_bytes": 25 * 2e6} for i, s in enumerate(steps)]

    exchange = {"publish_s": 0.1, "poll_s": 0.01, "transfer_s": 0.2, "load_s": 0.05,
                "link_bytes": 1.5e6}
    records = {
        "plain": [{"counted": False, "step_s": 9.0}] + [
            {"counted": True, "step_s": s} for s in (0.04, 0.05, 0.06)],
        "plain_graph": [{"counted": True, "step_s": s} for s in (0.07, 0.08, 0.09)],
        "sync2x": loops("0.1", 0.3, 0.28, 0.33) + loops("unshaped", 0.09, 0.1, 0.11),
        "codistill": loops("0.1", 0.05, 0.06, 0.07) + loops("unshaped", 0.05, 0.05, 0.05),
        "exchange": {"0.1": [exchange] * 3, "unshaped": [exchange] * 3},
        "allreduce": [{"rate": "0.1", "seconds": [0.2, 0.22, 0.5], "link_bytes": 9e6},
                      {"rate": "0.1", "seconds": [0.21, 0.23, 0.25], "link_bytes": 9e6},
                      {"rate": "unshaped", "seconds": [0.02] * 3, "link_bytes": 9e6}]}
    summary = interconnect.summarize(records, param_bytes=1_500_000)
    slow = summary["rows"]["0.1"]
    assert slow["plain_step_s"] == {"min": 0.04, "median": 0.05, "max": 0.06, "n": 3}
    assert slow["mwms_minus_graph_s"] == pytest.approx(0.30 - 0.08)
    assert slow["allreduce_s"] == pytest.approx((0.22 + 0.23) / 2)  # the blocks' medians
    assert slow["allreduce_link_bytes"] == pytest.approx(3e6)
    assert slow["sync2x_step_s"] == pytest.approx(0.05 + 0.225)
    assert slow["sync2x_link_bytes_per_step"] == pytest.approx(2e6)
    assert slow["exchange_s"] == pytest.approx(0.36)
    scaled = slow["scaled_to_paper_lm"]
    assert scaled["allreduce_s"] == pytest.approx(0.225 * 177.7e6 / 1.5e6)
    assert scaled["exchange_s"] == pytest.approx(0.36 * 177.7e6 / 1.5e6)
    assert summary["rows"]["unshaped"]["allreduce_s"] == pytest.approx(0.02)
    table = interconnect.format_table(summary)
    assert "0.1 Gb/s" in table and "unshaped" in table and "scaled" in table


@needs_link
@pytest.mark.slow  # two TensorFlow workers in the namespaces
def test_the_all_reduce_alone_is_bounded_by_the_shaped_link(tmp_path):
    shapes = [[1000, 256], [256]]  # 1.03 MB of float32
    size = 4 * (1000 * 256 + 256)
    with netns.Link() as link:
        records = interconnect.time_allreduce(link, shapes, [RATE_GBPS, None], repeats=1,
                                              per_block=3, log_prefix=str(tmp_path / "ar"))
    assert link.is_gone()
    slow, fast = records
    assert (slow["rate"], fast["rate"]) == ("0.1", "unshaped")
    for record in records:  # each worker sends its peer at least the tensors' bytes
        assert record["link_bytes"] >= 2 * size * len(record["seconds"])
    assert min(slow["seconds"]) >= (size - BURST_BYTES) * 8 / (RATE_GBPS * 1e9)


def test_a_run_of_some_parts_joins_the_earlier_file_and_refuses_other_flags():
    flagfile = os.path.join(lm_experiments.REPO, "configs", "experiment_hmm.flags")
    earlier = {"flags": ["--flagfile=configs/experiment_hmm.flags"], "command": "python a",
               "records": {"exchange": [1], "allreduce": [2]}, "summary": {"old": 1}}
    result = {"flags": [f"--flagfile={flagfile}"], "command": "python b --parts=allreduce",
              "records": {"allreduce": [3]}}
    merged = interconnect.merge_with_earlier(earlier, result)
    assert merged["records"] == {"exchange": [1], "allreduce": [3]}
    assert merged["commands"] == ["python a", "python b --parts=allreduce"]
    assert "summary" not in merged  # recomputed from the joined records
    with pytest.raises(ValueError, match="other train flags"):
        interconnect.merge_with_earlier(earlier, {**result, "flags": [*result["flags"], "--x"]})
