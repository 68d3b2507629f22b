"""Fault injection: a two-group run that a harness keeps killing, next to a fault-free one.

Two codistilling groups (one process each, sharing a model_dir, as a scheduler runs them)
train the tiny clusters task. While they train, the harness, from a seeded random
generator, at random moments:
  * kills a random running group with SIGKILL and restarts the same command (>= --kills),
  * truncates the data file of a group's newest published checkpoint, and deletes the one
    of another, while its peer polls it; the harness also reads the damaged directory
    itself right away, as a peer would (a load of the damaged step is a torn load),
  * starts a duplicate of a running group (it must exit 2 and leave the owner alone).
Then it runs the same two groups with the same seeds and no faults, and prints: faults
injected, groups finished, steps redone per kill (the group's newest published step at
the kill minus the step its restart resumed from; publishes come every --reload_interval
steps, so this is a lower bound within one reload interval; goal: at most one checkpoint
interval, --steps_per_loop), torn teacher loads (goal: 0) and the final eval losses.

    python benchmarks/fault_soak.py [--kills=6] [--train_steps=30000] [--seed=0]

Resumed groups read on from their place in the data, but codistilling groups never repeat
(which peer copy a group loads depends on when its peer published, and killed peers are
dropped for a while), so the faulty run's losses differ from the fault-free run's by more
than rounding. Timings
on a shared VM are noisy; none are claimed here.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tf_codistill.exchange import snapshots  # noqa: E402

_KILLS = flags.DEFINE_integer("kills", 6, "SIGKILLs (each followed by a restart).")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 30000, "Steps per group.")
_STEPS_PER_LOOP = flags.DEFINE_integer("steps_per_loop", 500, "Checkpoint interval.")
_RELOAD_INTERVAL = flags.DEFINE_integer("reload_interval", 100, "Publish/reload interval.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the fault schedule and of the runs.")
_MIN_GAP = flags.DEFINE_float("min_gap_s", 4.0, "Shortest wait between two faults.")
_MAX_GAP = flags.DEFINE_float("max_gap_s", 14.0, "Longest wait between two faults.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Where the runs go (default: a temp dir).")
_STALENESS = flags.DEFINE_integer("max_teacher_staleness", 0, "Passed to the groups (0: "
                                  "the train command's default, 3 x --reload_interval).")
_CLEAN_RUNS = flags.DEFINE_integer("clean_runs", 2, "Fault-free runs (their spread is the "
                                   "noise the faulty run's losses compare with).")


def group_flags(model_dir):
    return ["--task=clusters", "--batch_size=32", "--num_classes=8", "--hidden_units=32",
            "--eval_steps=0", f"--model_dir={model_dir}", "--num_groups=2",
            f"--train_steps={_TRAIN_STEPS.value}", f"--steps_per_loop={_STEPS_PER_LOOP.value}",
            f"--reload_interval={_RELOAD_INTERVAL.value}", f"--seed={_SEED.value}",
            f"--max_teacher_staleness={_STALENESS.value}"]


class Process:
    """One train process, its output collected by a thread."""

    started: list["Process"] = []

    def __init__(self, model_dir, group):
        Process.started.append(self)
        self.group = group
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tf_codistill.train", *group_flags(model_dir),
             f"--group={group}"], cwd=REPO, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(REPO)))
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.append(line)

    def output(self):
        self._reader.join(timeout=30)
        return "".join(self.lines)

    def resumed_from(self):
        for line in self.lines:
            if "resuming from step " in line:
                return int(line.split("resuming from step ")[1].split()[0])
            if "already finished at step" in line:
                return int(line.split("already finished at step ")[1].split(";")[0])
        return None if self.popen.returncode == -signal.SIGKILL else 0  # killed early / scratch


def newest_published(model_dir, group):
    directory = Path(model_dir) / f"group_{group}" / "published"
    try:
        manifest = json.loads((directory / snapshots.MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None, None
    entries = manifest["checkpoints"]
    return (entries[0], directory) if entries else (None, directory)


def damage(model_dir, group, how, wait_s=60.0):
    """Truncates or deletes the data file of the group's next published checkpoint the moment
    its manifest names it (before the peer's next poll, every 0.5 s), then reads the
    directory as a peer would; returns (step damaged, torn loads, reads)."""
    entry, _ = newest_published(model_dir, group)
    known = entry["step"] if entry else None
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        entry, directory = newest_published(model_dir, group)
        if entry is not None and entry["step"] != known:
            break
        time.sleep(0.02)
    else:
        return None, 0, 0
    data = max(entry["files"], key=lambda f: f["size"])
    path = directory / data["name"]
    try:
        if how == "truncate":
            os.truncate(path, data["size"] // 2)
        else:
            path.unlink()
    except FileNotFoundError:
        return None, 0, 0
    torn = reads = 0
    for _ in range(3):
        snapshot = snapshots.read_latest(str(directory))
        reads += 1
        still_damaged = (not path.exists()) or path.stat().st_size != data["size"]
        if snapshot is not None and snapshot.step == entry["step"] and still_damaged:
            torn += 1
        time.sleep(0.2)
    return entry["step"], torn, reads


def soak(model_dir, rng):
    processes = {g: Process(model_dir, g) for g in (0, 1)}
    finished, kills, damages, duplicate = {}, [], [], None
    failures = []  # exits with an error the harness did not cause
    to_do = ["kill"] * _KILLS.value + ["truncate", "delete", "duplicate"]
    rng.shuffle(to_do)
    while len(finished) < 2:
        time.sleep(rng.uniform(_MIN_GAP.value, _MAX_GAP.value) if to_do else 1.0)
        for g, process in list(processes.items()):
            code = process.popen.poll()
            if code is None or g in finished:
                continue
            if code == 0:
                finished[g] = process
            else:
                failures.append((g, code, process.output()[-2000:]))
                processes[g] = Process(model_dir, g)
        running = [g for g in processes if g not in finished]
        if not to_do or not running:
            continue
        fault, g = to_do.pop(), rng.choice(running)
        if fault == "kill":
            entry, _ = newest_published(model_dir, g)
            processes[g].popen.send_signal(signal.SIGKILL)
            processes[g].popen.wait()
            kills.append({"group": g, "published": entry["step"] if entry else 0,
                          "at_s": time.monotonic()})
            processes[g] = Process(model_dir, g)
            kills[-1]["process"] = processes[g]
        elif fault in ("truncate", "delete"):
            peer = rng.choice(running)
            step, torn, reads = damage(model_dir, peer, fault)
            damages.append({"how": fault, "group": peer, "step": step, "torn": torn,
                            "reads": reads})
        else:
            dup = Process(model_dir, g)
            code = dup.popen.wait(timeout=300)
            message = next((l.strip() for l in dup.lines if l.startswith("error:")), "")
            duplicate = {"group": g, "exit": code, "message": message,
                         "owner_alive": processes[g].popen.poll() in (None, 0)}
    for kill in kills:  # the restart has printed where it resumed from by now
        resumed = kill["process"].resumed_from()
        # A restart killed itself before it said where it resumed: the next kill's counts.
        kill["counted"] = resumed is not None
        kill["resumed"] = resumed if resumed is not None else "?"
        kill["redone"] = max(0, kill["published"] - resumed) if resumed is not None else "?"
    outputs = "".join(p.output() for p in Process.started)
    logs = Path(model_dir) / "process_logs"
    logs.mkdir(exist_ok=True)
    for number, process in enumerate(Process.started):
        (logs / f"{number:02d}-group{process.group}.log").write_text(process.output())
    return kills, damages, duplicate, failures, outputs


def clean_run(model_dir):
    processes = [Process(model_dir, g) for g in (0, 1)]
    return [p.popen.wait() for p in processes]


def metrics(model_dir, group):
    path = Path(model_dir) / f"group_{group}" / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def main(argv):
    del argv
    work = Path(_WORK_DIR.value or tempfile.mkdtemp(prefix="fault_soak_"))
    rng = random.Random(_SEED.value)
    start = time.monotonic()
    kills, damages, duplicate, failures, outputs = soak(work / "faulty", rng)
    soak_s = time.monotonic() - start
    codes, cleans = [], []
    for run in range(_CLEAN_RUNS.value):
        codes += clean_run(work / f"fault_free_{run}")
        cleans.append([metrics(work / f"fault_free_{run}", g) for g in (0, 1)])
    faulty = [metrics(work / "faulty", g) for g in (0, 1)]

    print(f"\nfault soak (a shared, busy 2-core VM: timings are not figures here): 2 groups x {_TRAIN_STEPS.value} steps (clusters task), checkpoint "
          f"every {_STEPS_PER_LOOP.value}, publish/reload every {_RELOAD_INTERVAL.value}, "
          f"seed {_SEED.value}; {work}")
    print(f"faults injected: {len(kills)} SIGKILL+restart, "
          f"{sum(d['how'] == 'truncate' for d in damages)} truncated and "
          f"{sum(d['how'] == 'delete' for d in damages)} deleted published checkpoint files, "
          f"{1 if duplicate else 0} duplicate start; faulty run took {soak_s:.0f} s")
    print(f"groups finished: faulty run {sum(m is not None for m in faulty)}/2, "
          f"fault-free runs {sum(m is not None for c in cleans for m in c)}/"
          f"{2 * len(cleans)} (exit codes {codes}); "
          f"unexpected exits in the faulty run: {len(failures)}")
    for g, code, tail in failures:
        print(f"  group {g} exited {code}:\n{tail}")
    print("kills (group: newest published step at the kill -> resumed from = steps redone):")
    for k in kills:
        note = "" if k["counted"] else " (its restart was killed too: not counted)"
        print(f"  group {k['group']}: {k['published']} -> {k['resumed']} = {k['redone']}{note}")
    redone = [k["redone"] for k in kills if k["counted"]]
    if redone:
        print(f"steps redone per kill: mean {sum(redone) / len(redone):.0f}, max {max(redone)} "
              f"(checkpoint interval {_STEPS_PER_LOOP.value}; lower bound within one reload "
              f"interval, {_RELOAD_INTERVAL.value})")
    for d in damages:
        print(f"damaged: {d['how']} group {d['group']} published step {d['step']}; harness "
              f"reads {d['reads']}, torn loads {d['torn']}")
    skips = outputs.count("Skipping peer checkpoint step")
    gave_up = outputs.count("No verified peer checkpoint in")
    print(f"torn teacher loads: {sum(d['torn'] for d in damages)} (harness reads); peers "
          f"skipped a damaged checkpoint {skips} times and found none verified {gave_up} "
          f"times (their warnings; a deleted file is skipped silently)")
    if duplicate:
        print(f"duplicate start of group {duplicate['group']}: exit {duplicate['exit']}, owner "
              f"undisturbed: {duplicate['owner_alive']}; \"{duplicate['message']}\"")
    drops = [m.get("peers_dropped") if m else None for m in faulty]
    print(f"stale-peer drops (faulty run, per group): {drops}")
    for g in (0, 1):
        f = faulty[g]["eval_loss"] if faulty[g] else float("nan")
        c = ", ".join(f"{run[g]['eval_loss']:.4f}" if run[g] else "nan" for run in cleans)
        print(f"final eval loss group {g}: faulty {f:.4f}, fault-free {c}")


if __name__ == "__main__":
    app.run(main)
