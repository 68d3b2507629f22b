"""What the link between two machines costs each arm: measured on a shaped veth pair.

Two one-core "machines" (``netns.Link``: a network namespace each, a veth pair between them,
every process pinned to its side's core with one intra-op thread) run the train command as
the arms do:

  * sync 2x: the synchronous arm at twice the batch, a two-worker MultiWorkerMirroredStrategy
    group (one batch per worker) whose all-reduce crosses the link;
  * codistill: two codistilling groups, one per machine, their peers' snapshots carried
    over the link by a ``snapshot_relay`` beside each;
  * plain 1x: one group per machine, no link (the 1x arm's step, and its graph-mode step,
    which the sync group runs: XLA cannot compile its collectives on CPU);
  * the exchange: the package's publisher writes a snapshot on one side, the other polls
    for it, copies it across the link and loads it with the verified read;
  * the all-reduce alone: the student's gradient shapes summed between two workers, one per
    side, without the step's compute (what the time model charges the 2x arm; see
    ``summarize``).

A training run keeps its processes for every bandwidth: the link is re-shaped between its
loops (``--steps_per_loop``), read from the progress line each loop prints, so the
bandwidths alternate within one run and a noisy machine hits all alike. A loop right after
a change is not counted (the change lands a few steps into it), nor the first (tracing and
compiling). Per-byte costs are scaled to a larger model's snapshot (the paper's LM) in
columns labelled as such.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from typing import Sequence

from experiments.harness import netns
from experiments.harness.results_paths import repo_relative
from experiments.harness.lm_experiments import (codistill_arm, flag_value, scaled_learning_rate,
                                                student_parameter_bytes)
from tf_codistill.config import layout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER_SNAPSHOT_BYTES = 177.7e6  # 2 x LSTM 1024, 24,006 tokens, float32 (reload_stall_paper.txt)
RELAY_PORT = 8700
_ports = itertools.count(8800)  # a fresh port per group: no wait on a closing socket
# The train command's progress line: "group 0 step 150[/600]: loss ... 6,529 tokens/s ..."
PROGRESS = re.compile(r"^group (\d+) step (\d+)(?:/\d+)?: .* ([\d,.]+) (\w+)/s")


def worker_env(tf_config: dict | None = None) -> dict:
    """A one-core machine's environment: one intra-op thread, quiet TensorFlow."""
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", OMP_NUM_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def train_argv(flags: Sequence[str], model_dir: str, steps: int, steps_per_loop: int
               ) -> list[str]:
    """The train command of one timing run (as experiments' step timings run it)."""
    return [sys.executable, "-m", "tf_codistill.train", *flags, f"--train_steps={steps}",
            f"--steps_per_loop={steps_per_loop}", "--eval_steps=1", "--keep_checkpoints=1",
            f"--model_dir={model_dir}"]


class Variants:
    """The train flags of each timed variant, from the experiment's flags."""

    def __init__(self, flags: Sequence[str], distill_fraction: float | None = None):
        self.flags = list(flags)
        batch = int(flag_value(flags, "batch_size", "32"))
        rate = float(flag_value(flags, "learning_rate", "0.001"))
        self.tokens_per_step = batch * int(flag_value(flags, "seq_len", "32"))
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
        self.reload_interval = int(flag_value(self.codistill, "reload_interval", "50"))


def schedule(rates: Sequence, repeats: int) -> list[tuple]:
    """(rate, counted) per loop: a warm-up loop, then per repeat every rate (rotated each
    repeat) for two loops, the first settling after the change, the second counted."""
    loops = [(rates[0], False)]
    for repeat in range(repeats):
        shift = repeat % len(rates)
        for rate in [*rates[shift:], *rates[:shift]]:
            loops += [(rate, False), (rate, True)]
    return loops


class LoopTimer:
    """Follows a train command's output: per loop, its step time and the link's bytes.

    Reads the progress lines of ``group`` (echoing everything to ``log_path``); at the end
    of loop k it shapes the link for loop k+1 as ``loops`` says.
    """

    def __init__(self, link, process, log_path, loops, tokens_per_step, group=0):
        self.records: list[dict] = []
        self._link, self._loops = link, loops
        self._tokens, self._group = tokens_per_step, group
        self._sent = self._bytes()
        self._thread = threading.Thread(target=self._follow, args=(process, log_path),
                                        daemon=True)
        link.shape(loops[0][0])
        self._thread.start()

    def _bytes(self):
        return sum(self._link.tx_bytes(side) for side in (0, 1))

    def _follow(self, process, log_path):
        with open(log_path, "w") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                match = PROGRESS.match(line)
                if not match or int(match.group(1)) != self._group:
                    continue
                loop = len(self.records)
                sent, self._sent = self._sent, self._bytes()
                if loop + 1 < len(self._loops):
                    self._link.shape(self._loops[loop + 1][0])
                rate, counted = self._loops[min(loop, len(self._loops) - 1)]
                self.records.append({
                    "rate": _key(rate), "counted": counted, "step": int(match.group(2)),
                    "step_s": self._tokens / float(match.group(3).replace(",", "")),
                    "link_bytes": self._sent - sent})

    def join(self):
        self._thread.join()


def _start(link, side, argv, env) -> subprocess.Popen:
    return link.popen(side, argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                      text=True)


def _wait(processes: Sequence[subprocess.Popen], logs: Sequence[str], timeout_s: float):
    deadline = time.monotonic() + timeout_s
    for process, log in zip(processes, logs):
        try:
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"a timing run took over {timeout_s:.0f} s; see {log}") from None
        if code:
            raise RuntimeError(f"a timing run failed (exit {code}); see {log}")


def _echo_to(process, log_path) -> threading.Thread:
    def copy():
        with open(log_path, "w") as log:
            shutil.copyfileobj(process.stdout, log)
    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def time_sync2x(link, variants: Variants, run_dir: str, loops: list, steps_per_loop: int,
                timeout_s: float) -> list[dict]:
    """The 2x arm: a two-worker MultiWorkerMirroredStrategy group, one worker per side."""
    port = next(_ports)
    cluster = [f"{address}:{port}" for address in netns.ADDRESSES]
    argv = train_argv(variants.sync2x, run_dir, len(loops) * steps_per_loop, steps_per_loop)
    processes, logs = [], [f"{run_dir}.worker{side}.log" for side in (0, 1)]
    for side in (0, 1):
        processes.append(_start(link, side, argv, worker_env(
            {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": side}})))
    timer = LoopTimer(link, processes[0], logs[0], loops, 2 * variants.tokens_per_step)
    echo = _echo_to(processes[1], logs[1])
    _wait(processes, logs, timeout_s)
    timer.join()
    echo.join()
    return timer.records


def time_codistill(link, variants: Variants, run_dir: str, loops: list, timeout_s: float,
                   seed_snapshots: Sequence[str]) -> list[dict]:
    """Two codistilling groups, one per side, their peers' snapshots relayed over the link.

    Each side has its own model_dir; its peer's published/ starts as a copy of
    ``seed_snapshots[peer]`` (so every timed step runs the teacher), then the relay
    replaces it with what the peer publishes while training. A loop is one reload
    interval, so each counted loop holds one publish and one reload of each group.
    """
    processes, logs, relays, threads = [], [], [], []
    steps = len(loops) * variants.reload_interval
    for side in (0, 1):
        model_dir, peer = f"{run_dir}/side{side}", 1 - side
        mine = layout.GroupLayout.of(model_dir, side).published
        theirs = layout.GroupLayout.of(model_dir, peer).published
        shutil.copytree(seed_snapshots[peer], theirs)
        relay = _relay(link, side, mine, theirs)
        relays.append(relay)
        threads.append(_echo_to(relay, f"{run_dir}.relay{side}.log"))
        logs.append(f"{run_dir}.group{side}.log")
        processes.append(_start(link, side, train_argv(
            [*variants.codistill, f"--group={side}"], model_dir, steps,
            variants.reload_interval), worker_env()))
    timer = LoopTimer(link, processes[0], logs[0], loops, variants.tokens_per_step)
    threads.append(_echo_to(processes[1], logs[1]))
    try:
        _wait(processes, logs, timeout_s)
    finally:
        for relay in relays:
            relay.kill()
            relay.wait()
    timer.join()
    for thread in threads:
        thread.join()
    metrics = [_metrics(f"{run_dir}/side{side}", side) for side in (0, 1)]
    for record in timer.records:
        record["teacher_reloads"] = [m["teacher_reloads"] for m in metrics]
    return timer.records


def time_plain(link, variants: Variants, run_dir: str, loops: int, steps_per_loop: int,
               timeout_s: float) -> dict[str, list[dict]]:
    """The 1x step (XLA, side 0) and its graph-mode twin (side 1) at once, each on its core."""
    runs = {"plain": (0, variants.plain), "plain_graph": (1, variants.plain_graph)}
    processes, logs, threads = [], [], []
    for name, (side, flags) in runs.items():
        logs.append(f"{run_dir}_{name}.log")
        processes.append(_start(link, side, train_argv(
            flags, f"{run_dir}_{name}", loops * steps_per_loop, steps_per_loop), worker_env()))
        threads.append(_echo_to(processes[-1], logs[-1]))
    _wait(processes, logs, timeout_s)
    for thread in threads:
        thread.join()
    records = {}
    for name, log in zip(runs, logs):
        with open(log) as f:
            steps = [PROGRESS.match(line) for line in f]
        records[name] = [{"step": int(m.group(2)), "counted": i > 0,
                          "step_s": variants.tokens_per_step / float(m.group(3).replace(",", ""))}
                         for i, m in enumerate(m for m in steps if m)]
    return records


def _metrics(model_dir: str, group: int = 0) -> dict:
    with open(layout.GroupLayout.of(model_dir, group).metrics) as f:
        return json.load(f)


def _relay(link, side, serve_dir, mirror_dir) -> subprocess.Popen:
    peer = netns.ADDRESSES[1 - side]
    argv = [sys.executable, "-m", "experiments.harness.snapshot_relay", f"--serve={serve_dir}",
            f"--bind={netns.ADDRESSES[side]}:{RELAY_PORT}", f"--peer=http://{peer}:{RELAY_PORT}",
            f"--mirror={mirror_dir}"]
    return _start(link, side, argv, worker_env())


def make_seed_snapshots(variants: Variants, run_dir: str, timeout_s: float) -> list[str]:
    """Each codistilled group's published snapshot after one step (the teachers' weights).

    Untimed set-up, on this machine's own network (nothing is exchanged); reused if there.
    """
    model_dir = f"{run_dir}/seed"
    published = [layout.GroupLayout.of(model_dir, g).published for g in (0, 1)]
    if all(os.path.exists(os.path.join(p, "manifest.json")) for p in published):
        return published
    processes, logs = [], []
    for group in (0, 1):
        logs.append(f"{run_dir}.seed{group}.log")
        with open(logs[-1], "w") as log:
            processes.append(subprocess.Popen(
                train_argv([*variants.codistill, f"--group={group}"], model_dir, 1, 1),
                env=worker_env(), stdout=log, stderr=subprocess.STDOUT))
    _wait(processes, logs, timeout_s)
    return published


def _ask(worker, line) -> dict:
    """Sends a line to a worker on stdin (None: nothing) and returns its JSON answer."""
    if line is not None:
        worker.stdin.write(f"{line}\n")
        worker.stdin.flush()
    answer = worker.stdout.readline()
    if not answer:
        raise RuntimeError(f"a benchmark worker exited ({worker.wait()})")
    return json.loads(answer)


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
            _ask(worker, None)
        self._steps = itertools.count(1)

    def close(self) -> None:
        for worker in (self._publisher, self._fetcher):
            worker.stdin.close()
            worker.wait(timeout=60)

    def once(self) -> dict:
        """Publish a new step on side 0, then poll, copy and load it on side 1."""
        step = next(self._steps)
        published = _ask(self._publisher, step)
        return {**published, **_ask(self._fetcher, step)}


PARTS = ("exchange", "allreduce", "sync2x", "codistill", "plain")


def run(flags: Sequence[str], rates_gbps: Sequence[float | None], work_dir: str,
        repeats: int = 3, sync_steps_per_loop: int = 25, plain_loops: int = 8,
        exchanges: int = 5, allreduces: int = 10, distill_fraction: float | None = None,
        parts: Sequence[str] = PARTS, timeout_s: float = 3600.0, echo=print) -> dict:
    """The ``parts`` at every bandwidth (None: unshaped): raw records by part."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"parts {sorted(unknown)} are not known; choose from {PARTS}.")
    variants = Variants(flags, distill_fraction)
    os.makedirs(work_dir, exist_ok=True)
    echo("seed snapshots (one step of each codistilled group) ...")
    seeds = make_seed_snapshots(variants, f"{work_dir}/setup", timeout_s)
    loops = schedule(list(rates_gbps), repeats)
    stamp = time.strftime("%H%M%S")
    records = {}
    with netns.Link() as link:
        if "exchange" in parts:
            echo("exchanges: publish, poll, copy across the link, load ...")
            exchange = Exchange(link, seeds[0], f"{work_dir}/exchange_{stamp}")
            records["exchange"] = {}
            for rate in rates_gbps:
                link.shape(rate)
                exchange.once()  # a first exchange opens connections and warms caches
                records["exchange"][_key(rate)] = [exchange.once() for _ in range(exchanges)]
            exchange.close()
        if "allreduce" in parts:
            echo(f"all-reduce of the gradients alone: {repeats} blocks of {allreduces} "
                 "per bandwidth ...")
            records["allreduce"] = time_allreduce(
                link, _variable_shapes(seeds[0]), list(rates_gbps), repeats, allreduces,
                f"{work_dir}/allreduce_{stamp}")
        if "sync2x" in parts:
            echo(f"sync 2x: one two-worker run, {len(loops)} loops of {sync_steps_per_loop} "
                 "steps ...")
            records["sync2x"] = time_sync2x(link, variants, f"{work_dir}/sync2x_{stamp}",
                                            loops, sync_steps_per_loop, timeout_s)
        if "codistill" in parts:
            echo(f"codistill: two groups, {len(loops)} loops of {variants.reload_interval} "
                 "steps ...")
            records["codistill"] = time_codistill(
                link, variants, f"{work_dir}/codistill_{stamp}", loops, timeout_s, seeds)
        if "plain" in parts:
            link.shape(None)
            echo(f"plain 1x, XLA and graph mode side by side, {plain_loops} loops ...")
            records.update(time_plain(link, variants, f"{work_dir}/plain_{stamp}",
                                      plain_loops, sync_steps_per_loop, timeout_s))
    if not link.is_gone():
        raise RuntimeError("a namespace of the link outlived it")
    return {"rates_gbps": [_key(r) for r in rates_gbps], "records": records,
            "parameter_bytes": student_parameter_bytes(os.path.dirname(seeds[0])),
            "flags": list(flags), "distill_fraction": distill_fraction, "repeats": repeats,
            "sync_steps_per_loop": sync_steps_per_loop,
            "codistill_steps_per_loop": variants.reload_interval}


def _variable_shapes(published_dir: str) -> list[list[int]]:
    """The shapes of the weights a group publishes: its student's, what it all-reduces."""
    with open(os.path.join(published_dir, "manifest.json")) as f:
        return [v["shape"] for v in json.load(f)["checkpoints"][0]["variables"]]


def time_allreduce(link, shapes: list, rates: list, repeats: int, per_block: int,
                   log_prefix: str) -> list[dict]:
    """Blocks of ``per_block`` all-reduces of tensors of ``shapes`` between two workers, one
    per side (``allreduce_worker``), at each rate in turn (rotated every repeat)."""
    port = next(_ports)
    cluster = [f"{address}:{port}" for address in netns.ADDRESSES]
    workers = []
    for side in (0, 1):
        env = worker_env({"cluster": {"worker": cluster},
                          "task": {"type": "worker", "index": side}})
        with open(f"{log_prefix}.worker{side}.log", "w") as log:
            workers.append(link.popen(
                side, [sys.executable, "-m", "experiments.harness.allreduce_worker",
                       f"--shapes={json.dumps(shapes)}"],
                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True))
    for worker in workers:
        _ask(worker, None)
    records = []
    for repeat in range(repeats):
        shift = repeat % len(rates)
        for rate in [*rates[shift:], *rates[:shift]]:
            link.shape(rate)
            sent = sum(link.tx_bytes(side) for side in (0, 1))
            for worker in workers:
                worker.stdin.write(f"{per_block}\n")
                worker.stdin.flush()
            answers = [_ask(worker, None) for worker in workers]  # both run the collectives
            records.append({"rate": _key(rate), "seconds": answers[0]["seconds"],
                            "link_bytes": sum(link.tx_bytes(side) for side in (0, 1)) - sent})
    for worker in workers:
        worker.stdin.close()
        worker.wait(timeout=120)
    return records


def _key(rate: float | None) -> str:
    return "unshaped" if rate is None else f"{rate:g}"


def spread(values: Sequence[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


def merge_with_earlier(earlier: dict, result: dict) -> dict:
    """A run of some parts (``result``) joined to an earlier run's file (``earlier``): its
    records and commands kept, the new ones added (a part measured again replaces its
    records). Both must hold the same train flags, as written (``repo_relative``)."""
    if earlier["flags"] != repo_relative(result["flags"]):
        raise ValueError(f"the earlier results were measured with other train flags "
                         f"({earlier['flags']})")
    commands = earlier.get("commands", [earlier["command"]])
    return {**{k: v for k, v in earlier.items() if k != "summary"},
            **{k: v for k, v in result.items() if k != "records"},
            "commands": [*commands, result["command"]],
            "records": {**earlier["records"], **result["records"]}}


def summarize(records: dict, param_bytes: int) -> dict:
    """Per bandwidth: each variant's step (min/median/max over its counted loops), the
    exchange, the per-byte costs, and those scaled to the paper's LM snapshot (labelled).

    The 2x arm's step as the time model charges it is the 1x arm's step (XLA, as the
    arms train) plus the measured all-reduce of the gradients alone (the median of the
    blocks' median). The two-worker group's own step is reported beside it: on a shared
    2-core machine its compute swings with the load more than the link moves it, so its
    difference to the graph-mode 1x step (``mwms_minus_graph_s``) is shown, not used.
    """
    def counted(name, rate=None):
        return [r for r in records[name] if r["counted"] and (rate is None or r["rate"] == rate)]

    plain = spread([r["step_s"] for r in counted("plain")])
    plain_graph = spread([r["step_s"] for r in counted("plain_graph")])
    rows = {}
    for rate, exchanges in records["exchange"].items():
        syncs = counted("sync2x", rate)
        sync = spread([r["step_s"] for r in syncs])
        codistill = spread([r["step_s"] for r in counted("codistill", rate)])
        snapshot = statistics.median(e["link_bytes"] for e in exchanges)
        parts = {part: spread([e[part] for e in exchanges])
                 for part in ("publish_s", "poll_s", "transfer_s", "load_s")}
        exchange_s = statistics.median(
            e["publish_s"] + e["poll_s"] + e["transfer_s"] + e["load_s"] for e in exchanges)
        blocks = [statistics.median(r["seconds"]) for r in records["allreduce"]
                  if r["rate"] == rate]
        allreduce = spread(blocks)
        allreduce_s = allreduce["median"]
        rows[rate] = {
            "plain_step_s": plain, "plain_graph_step_s": plain_graph,
            "sync2x_mwms_step_s": sync, "codistill_step_s": codistill,
            "mwms_minus_graph_s": sync["median"] - plain_graph["median"],
            "allreduce_block_s": allreduce, "allreduce_s": allreduce_s,
            "allreduce_link_bytes": statistics.median(
                r["link_bytes"] / len(r["seconds"]) for r in records["allreduce"]
                if r["rate"] == rate),
            "sync2x_step_s": plain["median"] + allreduce_s,
            "sync2x_link_bytes_per_step": statistics.median(
                r["link_bytes"] for r in syncs) / _steps_per_loop(records["sync2x"]),
            "exchange_bytes": snapshot, "exchange_parts_s": parts, "exchange_s": exchange_s,
            "scaled_to_paper_lm": {
                "note": f"measured per-byte costs x {PAPER_SNAPSHOT_BYTES / 1e6:.1f} MB "
                        "(scaled, not measured)",
                "allreduce_s": allreduce_s * PAPER_SNAPSHOT_BYTES / param_bytes,
                "exchange_s": exchange_s * PAPER_SNAPSHOT_BYTES / snapshot}}
    return {"parameter_bytes": param_bytes, "paper_snapshot_bytes": PAPER_SNAPSHOT_BYTES,
            "rows": rows}


def _steps_per_loop(loop_records: list[dict]) -> int:
    return loop_records[1]["step"] - loop_records[0]["step"]


def format_table(summary: dict) -> str:
    """Measured (ms) and, right of the bar, scaled to the paper's LM snapshot (s)."""
    lines = [f"parameters {summary['parameter_bytes'] / 1e6:.2f} MB float32; ms, "
             "min/median/max over counted loops (steps) or blocks (all-reduce). 1x: one "
             "machine's step (XLA; graph mode). MWMS: the 2x arm's two-worker step, graph "
             "mode. all-reduce: the gradients alone, 2 workers, and MB on the link per "
             "all-reduce. sync 2x = 1x XLA + all-reduce. codistill: a codistilled group's step "
             "(one reload and publish per loop). exchange: publish + poll + copy + load "
             "(median) and MB on the link. Right of the bar: measured per-byte cost x "
             f"{PAPER_SNAPSHOT_BYTES / 1e6:.1f} MB (the paper's LM; scaled, not measured), s.",
             f"{'link':>9} {'1x XLA':>12} {'1x graph':>12} {'MWMS 2-worker':>16} "
             f"{'all-reduce':>14} {'MB':>5} {'sync 2x':>7} {'codistill':>12} {'exchange':>8} "
             f"{'MB':>5} | {'all-reduce s':>12} {'exchange s':>10}"]
    for rate, row in summary["rows"].items():
        label = "unshaped" if rate == "unshaped" else f"{rate} Gb/s"
        scaled = row["scaled_to_paper_lm"]
        lines.append(
            f"{label:>9} {_ms(row['plain_step_s']):>12} {_ms(row['plain_graph_step_s']):>12} "
            f"{_ms(row['sync2x_mwms_step_s']):>16} {_ms(row['allreduce_block_s']):>14} "
            f"{row['allreduce_link_bytes'] / 1e6:>5.2f} {1e3 * row['sync2x_step_s']:>7.0f} "
            f"{_ms(row['codistill_step_s']):>12} {1e3 * row['exchange_s']:>8.1f} "
            f"{row['exchange_bytes'] / 1e6:>5.2f} | {scaled['allreduce_s']:>12.2f} "
            f"{scaled['exchange_s']:>10.2f}")
    return "\n".join(lines)


def _ms(s: dict) -> str:
    digits = 1 if s["max"] < 0.1 else 0
    return "/".join(f"{1e3 * s[k]:.{digits}f}" for k in ("min", "median", "max"))
