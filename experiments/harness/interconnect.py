"""What the link between two machines costs each arm: measured on a shaped veth pair.

Two one-core "machines" (``netns.Link``: a network namespace each, a veth pair between them,
every process pinned to its side's core with one intra-op thread) run, at each bandwidth:

  * sync 2x: the synchronous arm at twice the batch as the train command runs it, a
    two-worker MultiWorkerMirroredStrategy group (one batch per worker) whose all-reduce
    crosses the link;
  * codistill: two codistilling groups, one per machine, each the train command with its
    peer's snapshots carried over the link by a ``snapshot_relay`` beside it;
  * plain 1x: one group on one machine (no link), the baseline's step;
  * the exchange: the package's publisher writes a snapshot on one side, the other polls
    for it, copies it across the link and loads it with the verified read.

Step times are each run's median step (metrics.json, callbacks included); the variants
alternate within every repeat and the bandwidths rotate between repeats, so a noisy
machine hits all alike. Per-byte costs are scaled to a larger model's snapshot (the
paper's LM) in columns labelled as such.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Sequence

from experiments.harness import netns
from experiments.harness.lm_experiments import (codistill_arm, flag_value, scaled_learning_rate)
from tf_codistill.runner import layout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER_SNAPSHOT_BYTES = 177.7e6  # 2 x LSTM 1024, 24,006 tokens, float32 (reload_stall_paper.txt)
RELAY_PORT = 8700
_ports = itertools.count(8800)  # a fresh port per group: no wait on a closing socket


def worker_env(tf_config: dict | None = None) -> dict:
    """A one-core machine's environment: one intra-op thread, quiet TensorFlow."""
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", OMP_NUM_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def train_argv(flags: Sequence[str], model_dir: str, steps: int) -> list[str]:
    """The train command of one timing run (as experiments' step timings run it)."""
    return [sys.executable, "-m", "tf_codistill.train", *flags, f"--train_steps={steps}",
            f"--steps_per_loop={steps}", "--eval_steps=1", "--keep_checkpoints=1",
            f"--model_dir={model_dir}"]


def _wait(processes: Sequence[subprocess.Popen], logs: Sequence[str], timeout_s: float):
    deadline = time.monotonic() + timeout_s
    for process, log in zip(processes, logs):
        try:
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"a timing run took over {timeout_s:.0f} s; see {log}") from None
        if code:
            raise RuntimeError(f"a timing run failed (exit {code}); see {log}")


def _metrics(model_dir: str, group: int = 0) -> dict:
    with open(layout.GroupLayout.of(model_dir, group).metrics) as f:
        return json.load(f)


def _start(link, side, argv, env, log_path) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return link.popen(side, argv, env=env, stdout=log, stderr=subprocess.STDOUT)


class Variants:
    """The train flags of each timed variant, from the experiment's flags."""

    def __init__(self, flags: Sequence[str], distill_fraction: float | None = None):
        self.flags = list(flags)
        batch = int(flag_value(flags, "batch_size", "32"))
        rate = float(flag_value(flags, "learning_rate", "0.001"))
        self.plain = [*flags, "--num_groups=1"]
        # XLA on CPU cannot compile MultiWorkerMirroredStrategy's collectives, so the 2x
        # group runs graph mode; plain_graph is its compute alone, to subtract.
        self.plain_graph = [*self.plain, "--nojit_compile"]
        self.sync2x = [*flags, "--num_groups=1", "--strategy=multi_worker",
                       f"--batch_size={2 * batch}", "--nojit_compile",
                       f"--learning_rate={scaled_learning_rate(rate, 2, 'sqrt'):.6g}"]
        fraction = [] if distill_fraction is None else [f"--distill_fraction={distill_fraction}"]
        self.codistill = [*flags, *codistill_arm(0).flags, *fraction, "--num_groups=2",
                          "--burn_in_steps=0"]


def time_plain(link, flags: Sequence[str], run_dir: str, steps: int, timeout_s: float) -> dict:
    """One group alone on side 0's core (the 1x arm with the experiment's flags)."""
    log = f"{run_dir}.log"
    _wait([_start(link, 0, train_argv(flags, run_dir, steps), worker_env(), log)],
          [log], timeout_s)
    return _step_record(_metrics(run_dir))


def time_sync2x(link, variants: Variants, run_dir: str, steps: int, timeout_s: float) -> dict:
    """The 2x arm: a two-worker MultiWorkerMirroredStrategy group, one worker per side."""
    port = next(_ports)
    cluster = [f"{address}:{port}" for address in netns.ADDRESSES]
    sent = [link.tx_bytes(side) for side in (0, 1)]
    processes, logs = [], []
    for side in (0, 1):
        logs.append(f"{run_dir}.worker{side}.log")
        env = worker_env({"cluster": {"worker": cluster},
                          "task": {"type": "worker", "index": side}})
        processes.append(_start(link, side, train_argv(variants.sync2x, run_dir, steps), env,
                                logs[-1]))
    _wait(processes, logs, timeout_s)
    link_bytes = sum(link.tx_bytes(side) - sent[side] for side in (0, 1))
    return {**_step_record(_metrics(run_dir)), "link_bytes_per_step": link_bytes / steps}


def time_codistill(link, variants: Variants, run_dir: str, steps: int, timeout_s: float,
                   seed_snapshots: Sequence[str]) -> dict:
    """Two codistilling groups, one per side, their peers' snapshots relayed over the link.

    Each side has its own model_dir; its peer's published/ starts as a copy of
    ``seed_snapshots[peer]`` (so every timed step runs the teacher), then the relay
    replaces it with what the peer publishes while training.
    """
    processes, logs, relays = [], [], []
    for side in (0, 1):
        model_dir, peer = f"{run_dir}/side{side}", 1 - side
        mine = layout.GroupLayout.of(model_dir, side).published
        theirs = layout.GroupLayout.of(model_dir, peer).published
        shutil.copytree(seed_snapshots[peer], theirs)
        relay_log = f"{run_dir}.relay{side}.log"
        relays.append((_relay(link, side, mine, theirs, relay_log), relay_log))
        logs.append(f"{run_dir}.group{side}.log")
        processes.append(_start(link, side, train_argv(
            [*variants.codistill, f"--group={side}"], model_dir, steps), worker_env(), logs[-1]))
    try:
        _wait(processes, logs, timeout_s)
    finally:
        for relay, _ in relays:
            relay.kill()
            relay.wait()
    metrics = [_metrics(f"{run_dir}/side{side}", side) for side in (0, 1)]
    fetched = [json.loads(line) for _, log in relays for line in open(log)
               if line.startswith("{")]
    return {**_step_record(metrics[0]),
            "step_median_s_per_group": [m["step_time_median_s"] for m in metrics],
            "teacher_reloads": [m["teacher_reloads"] for m in metrics],
            "snapshots_relayed": len(fetched),
            "relayed_bytes": sum(f["bytes"] for f in fetched)}


def _relay(link, side, serve_dir, mirror_dir, log_path) -> subprocess.Popen:
    peer = netns.ADDRESSES[1 - side]
    argv = [sys.executable, "-m", "experiments.harness.snapshot_relay", f"--serve={serve_dir}",
            f"--bind={netns.ADDRESSES[side]}:{RELAY_PORT}", f"--peer=http://{peer}:{RELAY_PORT}",
            f"--mirror={mirror_dir}"]
    return _start(link, side, argv, worker_env(), log_path)


def _step_record(metrics: dict) -> dict:
    return {"step_median_s": metrics["step_time_median_s"],
            "step_p95_s": metrics["step_time_p95_s"]}


def make_seed_snapshots(variants: Variants, run_dir: str, timeout_s: float) -> list[str]:
    """Each codistilled group's published snapshot after one step (the teachers' weights).

    Untimed set-up, on this machine's own network (nothing is exchanged).
    """
    model_dir = f"{run_dir}/seed"
    processes, logs = [], []
    for group in (0, 1):
        logs.append(f"{run_dir}.seed{group}.log")
        with open(logs[-1], "w") as log:
            processes.append(subprocess.Popen(
                train_argv([*variants.codistill, f"--group={group}"], model_dir, 1),
                env=worker_env(), stdout=log, stderr=subprocess.STDOUT))
    _wait(processes, logs, timeout_s)
    return [layout.GroupLayout.of(model_dir, g).published for g in (0, 1)]


class Exchange:
    """A publisher on side 0 and a fetcher on side 1 (``exchange_worker``), kept running."""

    def __init__(self, link, weights_dir: str, run_dir: str):
        env = worker_env()
        module = [sys.executable, "-m", "experiments.harness.exchange_worker"]
        self._publisher = link.popen(0, [*module, "publish", f"--weights={weights_dir}",
                                         f"--directory={run_dir}/published",
                                         f"--bind={netns.ADDRESSES[0]}:{RELAY_PORT}"],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self._fetcher = link.popen(1, [*module, "fetch",
                                       f"--peer=http://{netns.ADDRESSES[0]}:{RELAY_PORT}",
                                       f"--directory={run_dir}/mirror"],
                                   env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True)
        for worker in (self._publisher, self._fetcher):
            self._ask(worker, None)
        self._steps = itertools.count(1)

    @staticmethod
    def _ask(worker, step):
        if step is not None:
            worker.stdin.write(f"{step}\n")
            worker.stdin.flush()
        line = worker.stdout.readline()
        if not line:
            raise RuntimeError(f"exchange worker exited ({worker.wait()})")
        return json.loads(line)

    def once(self) -> dict:
        """Publish a new step on side 0, then poll, copy and load it on side 1."""
        step = next(self._steps)
        published = self._ask(self._publisher, step)
        return {**published, **self._ask(self._fetcher, step)}


def run(flags: Sequence[str], rates_gbps: Sequence[float | None], work_dir: str,
        repeats: int = 3, sync_steps: int = 100, codistill_steps: int = 150,
        exchanges: int = 5, distill_fraction: float | None = None,
        timeout_s: float = 900.0, echo=print) -> dict:
    """Every variant at every bandwidth (None: unshaped), ``repeats`` times; raw records."""
    variants = Variants(flags, distill_fraction)
    os.makedirs(work_dir, exist_ok=True)
    echo("seed snapshots (one step of each codistilled group) ...")
    seeds = make_seed_snapshots(variants, f"{work_dir}/setup", timeout_s)
    records = {"plain": [], "plain_graph": [], "sync2x": {}, "codistill": {}, "exchange": {}}
    with netns.Link() as link:
        exchange = Exchange(link, seeds[0], f"{work_dir}/exchange")
        for rate in rates_gbps:
            link.shape(rate)
            exchange.once()  # a first exchange opens connections and warms caches
            records["exchange"][_key(rate)] = [exchange.once() for _ in range(exchanges)]
        for repeat in range(repeats):
            shift = repeat % len(rates_gbps)
            for rate in [*rates_gbps[shift:], *rates_gbps[:shift]]:
                link.shape(rate)
                order = ("sync2x", "codistill") if repeat % 2 == 0 else ("codistill", "sync2x")
                for name in order:
                    run_dir = f"{work_dir}/r{repeat}_{name}_{_key(rate)}"
                    echo(f"repeat {repeat + 1}/{repeats}: {name} at {_label(rate)} ...")
                    if name == "sync2x":
                        record = time_sync2x(link, variants, run_dir, sync_steps, timeout_s)
                    else:
                        record = time_codistill(link, variants, run_dir, codistill_steps,
                                                timeout_s, seeds)
                    records[name].setdefault(_key(rate), []).append(record)
            link.shape(None)
            for name in ("plain", "plain_graph"):
                echo(f"repeat {repeat + 1}/{repeats}: {name} 1x (one machine) ...")
                records[name].append(time_plain(link, getattr(variants, name),
                                                f"{work_dir}/r{repeat}_{name}", sync_steps,
                                                timeout_s))
    if not link.is_gone():
        raise RuntimeError("a namespace of the link outlived it")
    return {"rates_gbps": [_key(r) for r in rates_gbps], "records": records,
            "parameter_bytes": parameter_bytes(seeds[0]), "flags": list(flags),
            "distill_fraction": distill_fraction, "repeats": repeats,
            "sync_steps": sync_steps, "codistill_steps": codistill_steps,
            "summary": summarize(records, parameter_bytes(seeds[0]))}


def _key(rate: float | None) -> str:
    return "unshaped" if rate is None else f"{rate:g}"


def _label(rate: float | None) -> str:
    return "unshaped" if rate is None else f"{rate:g} Gb/s"


def parameter_bytes(published_dir: str) -> int:
    """float32 bytes of the weights a snapshot names (what an all-reduce of the gradients moves)."""
    with open(os.path.join(published_dir, "manifest.json")) as f:
        entry = json.load(f)["checkpoints"][0]
    return 4 * sum(math.prod(v["shape"]) for v in entry["variables"])


def spread(values: Sequence[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


def summarize(records: dict, param_bytes: int) -> dict:
    """Per bandwidth: each variant's step (min/median/max over repeats), the exchange, the
    per-byte costs, and those scaled to the paper's LM snapshot (labelled scaled).

    The 2x arm's step as the time model charges it is the 1x arm's step (XLA, as the
    arms train) plus what the link adds to a two-worker step: the graph-mode
    MultiWorkerMirroredStrategy step minus the graph-mode 1x step (XLA cannot compile the
    collectives on CPU).
    """
    plain = spread([r["step_median_s"] for r in records["plain"]])
    plain_graph = spread([r["step_median_s"] for r in records["plain_graph"]])
    rows = {}
    for rate, exchanges in records["exchange"].items():
        syncs = records["sync2x"].get(rate, [])
        sync = spread([r["step_median_s"] for r in syncs])
        codistill = spread([r["step_median_s"] for r in records["codistill"].get(rate, [])])
        snapshot = statistics.median(e["link_bytes"] for e in exchanges)
        parts = {part: spread([e[part] for e in exchanges])
                 for part in ("publish_s", "poll_s", "transfer_s", "load_s")}
        exchange_s = statistics.median(
            e["publish_s"] + e["poll_s"] + e["transfer_s"] + e["load_s"] for e in exchanges)
        allreduce_s = max(sync["median"] - plain_graph["median"], 0.0)
        rows[rate] = {
            "plain_step_s": plain, "plain_graph_step_s": plain_graph,
            "sync2x_mwms_step_s": sync, "codistill_step_s": codistill,
            "allreduce_s": allreduce_s, "sync2x_step_s": plain["median"] + allreduce_s,
            "sync2x_link_bytes_per_step": statistics.median(
                r["link_bytes_per_step"] for r in syncs),
            "exchange_bytes": snapshot, "exchange_parts_s": parts, "exchange_s": exchange_s,
            "scaled_to_paper_lm": {
                "note": f"measured per-byte costs x {PAPER_SNAPSHOT_BYTES / 1e6:.1f} MB "
                        "(scaled, not measured)",
                "allreduce_s": allreduce_s * PAPER_SNAPSHOT_BYTES / param_bytes,
                "exchange_s": exchange_s * PAPER_SNAPSHOT_BYTES / snapshot}}
    return {"parameter_bytes": param_bytes, "paper_snapshot_bytes": PAPER_SNAPSHOT_BYTES,
            "rows": rows}


def format_table(summary: dict) -> str:
    """Measured (ms) and, right of the bar, scaled to the paper's LM snapshot (s)."""
    lines = [f"parameters {summary['parameter_bytes'] / 1e6:.2f} MB float32. Steps: a run's "
             "median step, min/median/max over repeats (ms). all-reduce = 2-worker MWMS step "
             "- 1x step, both graph mode; sync 2x = 1x XLA step + all-reduce. exchange = "
             "publish + poll + copy + load, median (ms). scaled = measured per-byte cost x "
             f"{PAPER_SNAPSHOT_BYTES / 1e6:.1f} MB (the paper's LM; scaled, not measured), s.",
             f"{'link':>9} {'1x XLA':>12} {'1x graph':>12} {'MWMS 2-worker':>14} "
             f"{'codistill':>12} {'all-red':>7} {'2x':>5} {'MB/step':>7} {'exchange':>8} "
             f"{'MB':>5} | {'all-red s':>9} {'exchange s':>10}"]
    for rate, row in summary["rows"].items():
        label = "unshaped" if rate == "unshaped" else f"{rate} Gb/s"
        scaled = row["scaled_to_paper_lm"]
        lines.append(
            f"{label:>9} {_ms(row['plain_step_s']):>12} {_ms(row['plain_graph_step_s']):>12} "
            f"{_ms(row['sync2x_mwms_step_s']):>14} {_ms(row['codistill_step_s']):>12} "
            f"{1e3 * row['allreduce_s']:>7.1f} {1e3 * row['sync2x_step_s']:>5.0f} "
            f"{row['sync2x_link_bytes_per_step'] / 1e6:>7.2f} {1e3 * row['exchange_s']:>8.1f} "
            f"{row['exchange_bytes'] / 1e6:>5.2f} | {scaled['allreduce_s']:>9.2f} "
            f"{scaled['exchange_s']:>10.2f}")
    return "\n".join(lines)


def _ms(s: dict) -> str:
    return f"{1e3 * s['min']:.0f}/{1e3 * s['median']:.0f}/{1e3 * s['max']:.0f}"
