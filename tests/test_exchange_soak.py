"""Fault soak: a reader never loads torn weights while a writer process publishes and dies.

A writer in a separate process publishes every step with max_to_keep=2 and is killed with
SIGKILL several times and restarted, sometimes re-publishing steps that already exist. For
15 s, and on until a restarted writer's snapshots have loaded, the test process reads the
newest snapshot in a loop, and a PeerPoller polls in the background; every snapshot either
gets must be exactly one published step's weights. Run as a script, this file is that writer.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tf_codistill.exchange.snapshots import MANIFEST_NAME, PeerPoller, PeerPublisher, read_latest

pytestmark = pytest.mark.slow  # starts training processes

SOAK_SECONDS = 15.0
HANG_SECONDS = 120.0
KILL_AFTER_PUBLISHING_S = 1.0  # let each writer generation publish a while before killing it
_SHAPES = [(512, 256), (256,), (3, 3, 16, 32)]
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def weights_for(step: int, generation: int) -> list[tuple[str, np.ndarray]]:
    """Every element of variable i is step * 1000 + generation * 10 + i (exact in float32)."""
    assert generation < 100 and step < 16_000, "values would collide or lose float32 exactness"
    return [(f"var_{i}", np.full(shape, step * 1000 + generation * 10 + i, np.float32))
            for i, shape in enumerate(_SHAPES)]


def published_step_and_generation(snapshot) -> tuple[int, int]:
    """Identifies the (step, writer generation) a snapshot holds, failing on any mixture."""
    bases = set()
    for i, weight in enumerate(snapshot.weights):
        values = np.unique(weight)
        assert len(values) == 1, f"step {snapshot.step}: var_{i} mixes values {values[:5]}"
        bases.add(int(values[0]) - i)
    assert len(bases) == 1, f"step {snapshot.step}: variables from different steps {bases}"
    step, generation = divmod(bases.pop(), 1000)
    assert step == snapshot.step, f"manifest says step {snapshot.step}, weights say {step}"
    return step, generation // 10


def _write_forever(directory: str, start_step: int, generation: int) -> None:
    publisher = PeerPublisher(directory, max_to_keep=2)
    step = start_step
    while True:
        publisher.publish(step, weights_for(step, generation))
        step += 1


def _start_writer(directory, start_step, generation, log_path):
    env = dict(os.environ, PYTHONPATH=_REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, __file__, directory, str(start_step), str(generation)],
            env=env, cwd=_REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)


def _newest_published_step(directory) -> int:
    try:
        with open(os.path.join(directory, MANIFEST_NAME)) as f:
            return json.load(f)["checkpoints"][0]["step"]
    except FileNotFoundError:
        return 0


def test_reader_never_loads_torn_weights_while_the_writer_is_killed(tmp_path, caplog):
    directory, log_path = str(tmp_path / "published"), tmp_path / "writer.log"
    rng = np.random.default_rng(0)
    start_steps = {0: 0}
    writer = _start_writer(directory, 0, 0, log_path)
    counts = {"reads": 0, "loaded": 0, "none": 0, "retried_reads": 0, "retries": 0, "kills": 0}
    seen, generation_seen_at, polled = set(), {}, set()
    poller = PeerPoller([directory], poll_interval_s=0.05)
    deadline = time.monotonic() + SOAK_SECONDS
    hang = deadline + HANG_SECONDS
    try:
        # At least SOAK_SECONDS, and on until a restarted writer's snapshots have loaded
        # (a loaded machine starts the writer's process slowly).
        while time.monotonic() < deadline or len({g for _, g in seen}) < 2:
            assert time.monotonic() < hang, f"no restarted writer published in {HANG_SECONDS} s"
            assert writer.poll() is None, f"writer died on its own:\n{log_path.read_text()}"
            polled.update(published_step_and_generation(s) for s in poller.take_new().values())
            snapshot = read_latest(directory)
            counts["reads"] += 1
            if snapshot is None:
                counts["none"] += 1
                time.sleep(0.002)  # nothing published yet (writer starting) or gave up
                continue
            step, generation = published_step_and_generation(snapshot)
            assert step >= start_steps[generation], "a step that generation never published"
            counts["loaded"] += 1
            counts["retried_reads"] += snapshot.retries > 0
            counts["retries"] += snapshot.retries
            seen.add((step, generation))
            generation_seen_at.setdefault(generation, time.monotonic())
            current = max(start_steps)
            if (generation == current and
                    time.monotonic() - generation_seen_at[current] > KILL_AFTER_PUBLISHING_S):
                os.kill(writer.pid, signal.SIGKILL)
                writer.wait()
                counts["kills"] += 1
                restart = max(0, _newest_published_step(directory) - int(rng.integers(0, 3)))
                start_steps[current + 1] = restart
                writer = _start_writer(directory, restart, current + 1, log_path)
    finally:
        writer.kill()
        writer.wait()
        poller.close()
    poller_stats = poller.stats()
    generations = sorted({g for _, g in seen})
    messages = [r.getMessage() for r in caplog.records]
    counts["damaged_skipped"] = sum("Skipping peer checkpoint" in m for m in messages)
    counts["gave_up"] = sum("No verified peer checkpoint" in m for m in messages)
    print(f"\nsoak {SOAK_SECONDS:.0f}s: {counts}, distinct (step, generation) loaded: "
          f"{len(seen)}, generations loaded: {generations}, restart steps: {start_steps}; "
          f"background poller: {len(polled)} snapshots taken, stats {poller_stats}")
    assert counts["kills"] >= 1
    assert len(generations) >= 2  # snapshots kept loading after a restart
    assert counts["loaded"] > 100
    assert len(polled) > 10 and poller_stats["errors"] == 0


if __name__ == "__main__":
    _write_forever(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
