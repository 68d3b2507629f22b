"""Faults a cluster makes: concurrent starts, kills at any point, duplicate owners."""

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import lm, runs
from tf_codistill import config as config_lib
from tf_codistill.utils import lease as lease_lib
from tf_codistill.runner import train_lib
from tf_codistill.tasks.clusters import ClustersModelSection

CLUSTERS = ["--task=clusters", "--batch_size=32", "--num_classes=8", "--hidden_units=32",
            "--eval_steps=0"]
TINY_LM = ["--task=lm", "--prepare_demo_data", "--vocab_size=400", "--embedding_dim=8",
           "--units=16", "--num_layers=1", "--seq_len=8", "--batch_size=4",
           "--train_steps=4", "--steps_per_loop=2", "--reload_interval=2", "--eval_steps=2",
           "--min_paragraph_words=5", "--validation_fraction=0.05"]


def _copy_of(finished, model_dir):
    """``finished``'s config (the ``finished_lm`` fixture of tests/conftest.py) pointed at a
    copy of its model_dir under ``model_dir``, for a test to change."""
    config, _ = finished
    shutil.copytree(config.model_dir, model_dir)
    return dataclasses.replace(config, model_dir=str(model_dir))


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _write_lease(path, pid, host=None, age_s=0.0, token="old"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    record = {"host": host or socket.gethostname(), "pid": pid, "since": "then",
              "token": token}
    if host is None:
        record["pid_namespace"] = lease_lib.pid_namespace()
    with open(path, "w") as f:
        json.dump(record, f)
    if age_s:
        stamp = time.time() - age_s
        os.utime(path, (stamp, stamp))


# Leases.

def test_a_live_holder_refuses_a_second_owner_by_name(tmp_path):
    path = str(tmp_path / "lease.json")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # Here a live pid is authoritative: not renewed for long (a builder busy in C++
        # holding the GIL), it is still the owner.
        _write_lease(path, sleeper.pid, age_s=1000)
        with pytest.raises(lease_lib.LeaseHeld, match=f"group 3 is already running .*pid "
                           f"{sleeper.pid} since then"):
            lease_lib.Lease(path, "group 3").acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    with lease_lib.Lease(path, "group 3") as lease:  # its pid is gone now: taken over
        assert lease.took_over["pid"] == sleeper.pid and lease.holds()
    assert not os.path.exists(path)  # released


def test_a_lease_not_renewed_is_taken_over_and_a_renewed_one_is_not(tmp_path):
    path = str(tmp_path / "lease.json")
    other_host = "some-other-host.invalid"
    _write_lease(path, 1, host=other_host, age_s=3.0)  # pid 1 lives here, not there
    with pytest.raises(lease_lib.LeaseHeld, match=other_host):
        lease_lib.Lease(path, heartbeat_s=1.0, expire_heartbeats=5).acquire()
    _write_lease(path, 1, host=other_host, age_s=6.0)
    with lease_lib.Lease(path, heartbeat_s=1.0, expire_heartbeats=5) as lease:
        assert lease.took_over["host"] == other_host
        renewed = os.stat(path).st_mtime
        os.utime(path, (renewed - 100, renewed - 100))
        assert runs.wait_for(lambda: os.stat(path).st_mtime > renewed - 50, timeout=10)


def test_two_leases_in_one_process_exclude_each_other(tmp_path):
    path = str(tmp_path / "lease.json")
    with lease_lib.Lease(path, "group 0"):
        with pytest.raises(lease_lib.LeaseHeld, match=f"pid {os.getpid()}"):
            lease_lib.Lease(path, "group 0").acquire()


def test_a_holder_whose_lease_was_taken_stops(tmp_path):
    path = str(tmp_path / "lease.json")
    lost = threading.Event()
    lease = lease_lib.Lease(path, heartbeat_s=0.1, on_lost=lambda holder: lost.set())
    lease.acquire()
    try:
        _write_lease(path, 12345, host="taker.invalid", token="new")
        assert lost.wait(timeout=10)
    finally:
        lease.release()
    assert json.load(open(path))["token"] == "new"  # release never removes another's lease


def test_make_once_waits_for_a_live_builder_and_takes_over_a_dead_one(tmp_path):
    path = str(tmp_path / "data" / "corpus.txt")
    holder = lease_lib.Lease(path + ".lease", "builder")
    holder.acquire()
    built = []
    waiter = threading.Thread(target=lambda: lease_lib.make_once(
        path, lambda p: built.append(p), poll_s=0.05))
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive() and not built  # waits while the holder lives
    with open(path, "w") as f:
        f.write("made by the holder")
    holder.release()
    waiter.join(timeout=30)
    assert not waiter.is_alive() and not built  # reused, not rebuilt

    other = str(tmp_path / "data" / "vocab.model")
    _write_lease(other + ".lease", _dead_pid())  # a builder killed midway

    def build(p):
        with open(p, "w") as f:
            f.write("rebuilt")
    lease_lib.make_once(other, build)
    assert open(other).read() == "rebuilt" and not os.path.exists(other + ".lease")


# Idempotent reruns (in process, tiny LM: a subclassed, stateful student).

def _complete(group_dir, steps):
    metrics = json.loads((group_dir / "metrics.json").read_text())
    assert metrics["global_step"] == steps and metrics["eval_loss"] > 0
    served = tf.saved_model.load(str(group_dir / "export"))
    assert served.signatures or served is not None
    assert not list(group_dir.glob("export.tmp-*")) and not list(group_dir.glob("export.old-*"))
    assert not (group_dir / "lease.json").exists()
    return metrics


def _published_as_at(group_dir, step):
    """``group_dir``'s published/ put back as it was when ``step`` was its newest snapshot
    (manifest, checkpoint state, files): a kill before the next publish leaves it so."""
    from tf_codistill.exchange import snapshots
    published = group_dir / "published"
    manifest_path = published / snapshots.MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["checkpoints"] = [e for e in manifest["checkpoints"] if e["step"] <= step]
    manifest_path.write_text(json.dumps(manifest))
    for path in published.glob("ckpt-*"):
        if int(path.name.split("-")[1].split(".")[0]) > step:
            path.unlink()
    kept = [entry["prefix"] for entry in reversed(manifest["checkpoints"])]
    tf.compat.v1.train.update_checkpoint_state(str(published), kept[-1],
                                               all_model_checkpoint_paths=kept)
    assert snapshots.read_latest(str(published)).step == step


@pytest.mark.slow
def test_a_rerun_publishes_the_last_step_a_kill_kept_from_the_peers(tmp_path):
    """Killed after its last checkpoint (130) but before publishing it: the rerun of the same
    command publishes step 130, the weights of that checkpoint, before it exports."""
    from tf_codistill.exchange import snapshots
    flags = [*CLUSTERS, f"--model_dir={tmp_path}", "--num_groups=2", "--group=0",
             "--train_steps=130", "--reload_interval=50", "--steps_per_loop=10"]
    code, output = runs.run(flags)
    assert code == 0, output[-3000:]
    published = str(tmp_path / "group_0" / "published")
    final = snapshots.read_latest(published)
    assert final.step == 130
    _published_as_at(tmp_path / "group_0", 100)
    (tmp_path / "group_0" / "metrics.json").unlink()

    code, output = runs.run(flags)
    assert code == 0, output[-3000:]
    assert "resuming from step 130" in output
    again = snapshots.read_latest(published)
    assert again.step == 130
    for mine, theirs in zip(again.weights, final.weights):
        np.testing.assert_array_equal(mine, theirs)
    assert "publishing step 130, which the run that trained it did not" in output
    assert runs.metrics(tmp_path, 0)["global_step"] == 130
    code, output = runs.run(flags)  # finished and published: nothing to redo
    assert code == 0 and "already finished at step 130" in output
    assert "publishing step" not in output


@pytest.mark.slow
def test_a_rerun_after_the_last_checkpoint_exports_and_evaluates(tmp_path, finished_lm):
    """A kill during export or the final evaluation leaves no metrics.json."""
    config = _copy_of(finished_lm, tmp_path / "run")
    _, first = finished_lm
    group_dir = tmp_path / "run" / "group_0"
    (group_dir / "metrics.json").unlink()
    shutil.rmtree(group_dir / "export")
    again = train_lib.run(config)
    assert _complete(group_dir, 6)["eval_loss"] == pytest.approx(first["eval_loss"], rel=1e-5)
    assert again["train_loss"] is None  # nothing was trained again


@pytest.mark.slow
def test_a_rerun_after_a_half_written_export_replaces_it(tmp_path, finished_lm):
    config = _copy_of(finished_lm, tmp_path / "run")
    group_dir = tmp_path / "run" / "group_0"
    (group_dir / "metrics.json").unlink()
    shutil.rmtree(group_dir / "export" / "variables")  # torn export/
    torn = group_dir / "export.tmp-999-deadbeef"  # what a kill inside model.save leaves
    (torn / "variables").mkdir(parents=True)
    (torn / "saved_model.pb").write_bytes(b"torn")
    train_lib.run(config)
    _complete(group_dir, 6)


@pytest.mark.slow
def test_a_rerun_after_metrics_json_changes_nothing(tmp_path, finished_lm, capsys):
    config = _copy_of(finished_lm, tmp_path / "run")
    _, first = finished_lm
    assert train_lib.run(config) == first
    assert "already finished at step 6" in capsys.readouterr().out


# Real processes.

@pytest.mark.slow
def test_groups_started_together_prepare_the_demo_data_once(tmp_path):
    flags = [*TINY_LM, f"--model_dir={tmp_path}", "--num_groups=2"]
    processes = [runs.start([*flags, f"--group={group}"]) for group in (0, 1)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    assert sorted(os.listdir(tmp_path / "data")) == ["python_docs.wet.gz", "vocab_400.model"]
    assert sum("waiting for" in output for output in outputs) >= 1  # one built, one waited
    for group in (0, 1):
        assert runs.metrics(tmp_path, group)["global_step"] == 4


@pytest.mark.slow
def test_a_duplicate_exits_2_naming_the_holder_and_kill_9_then_rerun_finishes(tmp_path):
    """The duplicate is refused; the killed owner's lease is taken over by the rerun, which
    starts from scratch (killed before its first checkpoint) and completes the group.

    The owner is frozen (SIGSTOP) as soon as it holds its lease, before its first step:
    a live pid on this host keeps its lease, renewed or not, and the kill comes before
    any checkpoint."""
    flags = [*CLUSTERS, f"--model_dir={tmp_path}", "--train_steps=600", "--steps_per_loop=600"]
    group_dir = tmp_path / "group_0"
    lease_path = group_dir / "lease.json"
    owner = runs.start(flags)
    try:
        assert runs.wait_for(lease_path.exists, timeout=180, interval=0.05)
        os.kill(owner.pid, signal.SIGSTOP)
        code, output = runs.run(flags, timeout=180)
        assert code == 2, output[-3000:]
        holder = json.loads(lease_path.read_text())
        assert holder["pid"] == owner.pid
        assert (f"group 0 is already running (host {socket.gethostname()} pid {owner.pid} "
                f"since {holder['since']}") in output
        assert "Traceback" not in output
        assert owner.poll() is None  # the owner was not disturbed
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
    finally:
        if owner.poll() is None:
            owner.kill()
    assert tf.train.latest_checkpoint(str(group_dir / "checkpoints")) is None
    code, output = runs.run(flags, timeout=300)
    assert code == 0, output[-3000:]
    assert f"taking over the lease of host {socket.gethostname()} pid {owner.pid}" in output
    assert "resuming" not in output
    _complete(group_dir, 600)


@pytest.mark.slow
def test_the_launcher_says_which_groups_already_run_and_exits_2(tmp_path, capsys):
    """Group 1 is held by a live process (this one): its child exits 2 naming it, and the
    launcher says so (not "failed; rerun") while group 0 trains as usual."""
    from tf_codistill.cluster import local
    from tf_codistill.config import layout
    config = config_lib.RunConfig(
        task="clusters", model_dir=str(tmp_path), num_groups=2,
        trainer=config_lib.TrainerConfig(batch_size=32, steps_per_loop=10, eval_steps=2,
                                         train_steps=10),
        model=ClustersModelSection(hidden_units=(32,), num_classes=8))
    with lease_lib.Lease(layout.GroupLayout.of(str(tmp_path), 1).lease(""), "group 1") as held:
        code = local.run_local_groups(config)
    output = capsys.readouterr().out
    assert code == 2, output[-3000:]
    assert (f"group 1 of {tmp_path} is already running (group 1: {lease_lib.describe(held.record)}"
            f"); this launch did not start it again.") in output
    assert "failed; rerun" not in output and "Traceback" not in output
    assert runs.metrics(tmp_path, 0)["global_step"] == 10
    assert not (tmp_path / "group_1" / "metrics.json").exists()


# A child that ignores SIGTERM: it writes its pid once it does, then sleeps.
STUBBORN_CHILD = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                  "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)")


def test_ctrl_c_on_the_launcher_leaves_no_group_process_alive(tmp_path, monkeypatch):
    """Ctrl-C while the groups run: SIGTERM, then SIGKILL past the grace period, all reaped.
    The groups are cheap python sleepers that ignore SIGTERM (the worst case)."""
    from tf_codistill.cluster import local
    pid_files = [tmp_path / f"child_{g}.pid" for g in range(2)]
    monkeypatch.setattr(local, "group_command", lambda path, group: [
        sys.executable, "-c", STUBBORN_CHILD, str(pid_files[group])])
    monkeypatch.setattr(local, "STOP_GRACE_S", 0.3, raising=False)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupt_when_started():
        deadline = time.monotonic() + 30
        while not all(f.exists() and f.read_text() for f in pid_files):
            if time.monotonic() > deadline:
                return  # the children never started: the launcher's wait is not interrupted
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    config = config_lib.RunConfig(task="clusters", model_dir=str(tmp_path / "run"),
                                  num_groups=2)
    pids = []
    try:
        threading.Thread(target=interrupt_when_started, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            local.run_local_groups(config)
        pids = [int(f.read_text()) for f in pid_files]
        for pid in pids:
            with pytest.raises(ProcessLookupError):  # neither running nor a zombie
                os.kill(pid, 0)
    finally:
        signal.signal(signal.SIGINT, previous)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_lease_held_message_names_its_holder_and_nothing_else_does(tmp_path):
    path = str(tmp_path / "lease.json")
    with lease_lib.Lease(path, "group 2") as held:
        with pytest.raises(lease_lib.LeaseHeld) as refused:
            lease_lib.Lease(path, "group 2").acquire()
    assert (lease_lib.holder_named_in(f"error: {refused.value}\n")
            == lease_lib.describe(held.record))
    assert lease_lib.holder_named_in("error: --batch_size=3 does not split evenly") is None


# A dead peer.

def test_a_group_stops_distilling_from_a_peer_that_died_early(tmp_path, caplog):
    """Group 1 trains 20 steps and stops publishing; group 0, which finds its snapshot when
    it starts, drops it once more than 30 steps went by without a newer one."""
    def config(group, steps):
        return config_lib.RunConfig(
            task="clusters", model_dir=str(tmp_path), num_groups=2, group=group,
            trainer=config_lib.TrainerConfig(batch_size=32, steps_per_loop=20, eval_steps=0,
                                             train_steps=steps),
            codistill=config_lib.CodistillConfig(reload_interval=10, reload_offset=0,
                                                 max_teacher_staleness=30),
            model=ClustersModelSection(hidden_units=(32,), num_classes=8))
    train_lib.run(config(1, 20))
    with caplog.at_level("WARNING"):
        metrics = train_lib.run(config(0, 200))
    # A peer whose copy is late is looked for after every step, so the limit is checked
    # there too: the first step past it (31) drops the peer.
    assert ("sent nothing new for 31 steps (its newest snapshot: step 20, received at step 0; "
            "this group: step 31") in caplog.text
    assert metrics["teacher_reloads"] == 1 and metrics["peers_dropped"] == 1
    assert metrics["teacher_dropped_steps"] == 169  # from step 31 to 200
    assert metrics["dropped_peers"] == [0]
    assert runs.metrics(tmp_path, 0)["peers_dropped"] == 1
    from tests.test_train import tensorboard_scalars
    scalars = tensorboard_scalars(tmp_path / "group_0" / "logs" / "codistill")
    assert {"peers_dropped", "teacher_dropped_steps"} <= scalars


def test_the_staleness_limit_defaults_to_three_reload_intervals():
    assert config_lib.CodistillConfig(reload_interval=50).teacher_staleness_limit == 150
    assert config_lib.CodistillConfig(reload_interval=50,
                                      max_teacher_staleness=70).teacher_staleness_limit == 70


# Multi-worker groups.

def test_a_stateful_group_resumed_on_another_number_of_replicas_is_refused(tmp_path,
                                                                           mirrored_strategy):
    from tf_codistill.core.carried_state import ReplicaCarriedState
    from tf_codistill.models.lstm_lm import LanguageModelConfig, StatefulLanguageModel
    from tf_codistill.runner.group import check_same_replicas

    def carried(strategy, replicas):
        with strategy.scope():
            model = StatefulLanguageModel(LanguageModelConfig(vocab_size=20, embedding_dim=4,
                                                              units=3, num_layers=1),
                                          batch_size=4 // replicas)
        return ReplicaCarriedState(model, strategy)
    one = carried(tf.distribute.get_strategy(), 1)
    path = tf.train.Checkpoint(carried_state=one.variables).write(str(tmp_path / "ckpt"))
    assert check_same_replicas(path, 1, one)  # holds every replica's state
    older = tf.train.Checkpoint(step=tf.Variable(3)).write(str(tmp_path / "older"))
    assert not check_same_replicas(older, 1, one)  # from before it did
    with pytest.raises(config_lib.ConfigError, match=r"group 1: .* was trained on 1 "
                       r"replica\(s\) of 4 streams each, this run has 2 of 2\..* resume "
                       r"with 1 replica\(s\)"):
        check_same_replicas(path, 1, carried(mirrored_strategy, 2))


@pytest.mark.slow
def test_a_multi_worker_group_checkpoints_the_carried_state_of_every_worker(tmp_path):
    """Gathering is a collective over both workers' replicas, in replica order, and every
    replica gets its own rows back (tests/helpers/carried_state_worker.py)."""
    from tests.test_multi_worker import free_ports, start_worker
    cluster = [f"localhost:{port}" for port in free_ports(2)]
    outputs = [tmp_path / f"worker{i}.npz" for i in range(2)]
    workers = [start_worker(i, cluster, out, module="tests.helpers.carried_state_worker")
               for i, out in enumerate(outputs)]
    for worker in workers:
        log, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, log[-3000:]
    # Replica r filled state variable i (h, c of one layer) with 10 r + i + 1.
    expected = np.array([[np.full((2, 3), 10 * r + i + 1) for r in range(2)]
                         for i in range(2)])
    for index, out in enumerate(outputs):
        result = np.load(out)
        assert int(result["worker"]) == index
        np.testing.assert_array_equal(result["gathered"], expected)
        np.testing.assert_array_equal(result["restored"], expected[:, index])


@pytest.mark.slow
@pytest.mark.parametrize("victim, how", [(1, signal.SIGKILL), (0, signal.SIGSTOP)])
def test_a_lost_worker_stops_its_group_with_a_message_and_a_rerun_resumes(tmp_path, victim,
                                                                          how):
    """SIGKILL resets the connections; SIGSTOP (a frozen or unreachable host, and here the
    coordination leader) is found by the coordination service's missed heartbeats. The
    timeout below is a hang detector, not a speed claim: the bound is about 10 s."""
    flags = [*CLUSTERS, f"--model_dir={tmp_path}", "--train_steps=200", "--steps_per_loop=40",
             "--strategy=multi_worker", "--eval_steps=4"]
    workers = runs.start_workers(flags)
    try:
        assert runs.wait_for(lambda: any(s >= 80 for s in runs.checkpoint_steps(tmp_path, 0)),
                             timeout=300)
        os.kill(workers[victim].pid, how)
        output, _ = workers[1 - victim].communicate(timeout=120)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    last = max(runs.checkpoint_steps(tmp_path, 0))
    assert workers[1 - victim].returncode == 1, output[-3000:]
    assert (f"group 0 lost a worker" in output and "rerun all of the group's workers" in output
            and f"resume from its last checkpoint, step {last}" in output), output[-3000:]
    assert not (tmp_path / "group_0" / "metrics.json").exists()

    rerun = runs.start_workers(flags)
    outputs = [worker.communicate(timeout=400)[0] for worker in rerun]
    for worker, output in zip(rerun, outputs):
        assert worker.returncode == 0, output[-3000:]
        assert f"resuming from step {last}" in output
    assert runs.metrics(tmp_path, 0)["global_step"] == 200


# Exact resume.

def _killed_after(source, target, step):
    """``target``: ``source``'s group directory as a kill right after checkpoint ``step`` left
    it (later checkpoints, export and metrics.json gone)."""
    shutil.copytree(source, target)
    group_dir = target / "group_0"
    for name in ("metrics.json", "export"):
        path = group_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    checkpoints = str(group_dir / "checkpoints")
    for path in (group_dir / "checkpoints").glob("ckpt-*"):
        if int(path.name.split("-")[1].split(".")[0]) > step:
            path.unlink()
    kept = [f"ckpt-{s}" for s in runs.checkpoint_steps(target, 0)]
    tf.compat.v1.train.update_checkpoint_state(checkpoints, kept[-1],
                                               all_model_checkpoint_paths=kept)
    assert tf.train.latest_checkpoint(checkpoints).endswith(f"ckpt-{step}")
    return group_dir


def _student_weights(group_dir):
    """The student's variables in the newest checkpoint, and every replica's carried state."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(group_dir / "checkpoints")))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith(("model/student", "carried_state"))
            and "OPTIMIZER_SLOT" not in name}


@pytest.mark.slow
@pytest.mark.parametrize("strategy_name, replicas", [("default", 1), ("mirrored", 2)])
def test_a_resumed_lm_group_trains_on_the_same_batches_as_an_uninterrupted_one(
        tmp_path, corpus, monkeypatch, request, strategy_name, replicas):
    """Killed after step 3 of 6 and rerun: the same weights, per-replica carried state and
    losses at step 6 as the run that was never interrupted, with one replica and with two
    (MirroredStrategy over the two logical CPUs; the session's one MirroredStrategy, since
    several in one process abort each other's all-reduces). With one replica the
    uninterrupted run is the session's ``finished_lm``."""
    if strategy_name == "mirrored":
        shared = request.getfixturevalue("mirrored_strategy")
        monkeypatch.setattr(train_lib, "get_strategy", lambda name, tpu="": shared)
        config = lm.lm_config(tmp_path / "whole", *corpus, strategy=strategy_name)
        config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer,
                                                                         keep_checkpoints=0))
        whole = train_lib.run(config)
    else:
        config, whole = request.getfixturevalue("finished_lm")
        assert config.strategy == strategy_name and config.trainer.keep_checkpoints == 0
    whole_dir = Path(config.model_dir)
    group_dir = _killed_after(whole_dir, tmp_path / "resumed", 3)
    resumed = train_lib.run(dataclasses.replace(config, model_dir=str(tmp_path / "resumed")))
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-6)
    assert resumed["eval_loss"] == pytest.approx(whole["eval_loss"], rel=1e-6)
    expected = _student_weights(whole_dir / "group_0")
    got = _student_weights(group_dir)
    assert expected.keys() == got.keys() and any("student/states" in k for k in got)
    states = [k for k in got if k.startswith("carried_state")]
    assert len(states) == 4  # h and c of two layers
    per_replica_batch = config.trainer.batch_size // replicas
    for name in states:
        assert got[name].shape == (replicas, per_replica_batch, 16)
        assert np.all(np.any(got[name] != 0, axis=(1, 2)))  # every replica's own state
    if replicas > 1:
        assert not np.allclose(got[states[0]][0], got[states[0]][1])  # not copies
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
