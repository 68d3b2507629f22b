"""Groups on a cluster: Slurm placement, ports and TF_CONFIG; 2 groups x 2 workers via srun's env."""

import json
import os
import re
import shlex
import socket
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from tests.helpers import runs
from tf_codistill.cluster import slurm
from tf_codistill import config as config_lib
from tf_codistill.runner import flags as flags_lib
from tf_codistill.runner import train_lib

CLUSTERS = ["--task=clusters", "--batch_size=32", "--num_classes=8", "--hidden_units=32"]


def slurm_env(rank, ntasks, nodelist="localhost", tasks_per_node=None, **extra):
    env = {"SLURM_PROCID": str(rank), "SLURM_STEP_NUM_TASKS": str(ntasks),
           "SLURM_STEP_NODELIST": nodelist,
           "SLURM_STEP_TASKS_PER_NODE": tasks_per_node or str(ntasks)}
    env.update(extra)
    return env


def test_ranks_are_group_major_and_ports_follow_the_index_on_the_node():
    # 2 groups x 4 workers on 4 nodes with 2 tasks each: a group spans two nodes.
    places = [slurm.slurm_placement(
        2, 4, 9000, slurm_env(r, 8, "n[01-04]", "2(x4)", SLURM_LOCALID=str(r % 2)))
        for r in range(8)]
    assert [(p.group, p.worker) for p in places] == [(r // 4, r % 4) for r in range(8)]
    assert places[0].workers == ("n01:9000", "n01:9001", "n02:9000", "n02:9001")
    assert places[5].workers == ("n03:9000", "n03:9001", "n04:9000", "n04:9001")
    assert all(p.workers == places[4 * p.group].workers for p in places)
    assert places[6].tf_config() == {"cluster": {"worker": list(places[4].workers)},
                                     "task": {"type": "worker", "index": 2}}


def test_two_groups_sharing_a_node_get_different_ports():
    places = [slurm.slurm_placement(2, 2, 9000, slurm_env(r, 4, "gpu7")) for r in range(4)]
    addresses = [p.workers[p.worker] for p in places]
    assert addresses == ["gpu7:9000", "gpu7:9001", "gpu7:9002", "gpu7:9003"]
    assert places[2].workers == ("gpu7:9002", "gpu7:9003")


def test_job_nodelist_and_ntasks_are_the_fallbacks():
    env = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "a,b",
           "SLURM_TASKS_PER_NODE": "1,1"}
    assert slurm.slurm_placement(1, 2, 9000, env).workers == ("a:9000", "b:9000")


@pytest.mark.parametrize("env, message", [
    ({}, "needs SLURM_PROCID"),
    (slurm_env(0, 5), "SLURM_STEP_NUM_TASKS=5 is not --num_groups x --workers_per_group = "
                      "2 x 2 = 4: start srun --ntasks=4"),
    (slurm_env(4, 4), "SLURM_PROCID=4 is outside the step's 4 tasks"),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}, "needs SLURM_STEP_NODELIST or "
                                                 "SLURM_JOB_NODELIST"),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "n[1-2]"},
     "SLURM_STEP_TASKS_PER_NODE and SLURM_TASKS_PER_NODE are not set"),
    (slurm_env(0, 4, "n[1-2]", "3,2"), "places 5 tasks on 2 nodes"),
    (slurm_env(1, 4, "n[1-2]", "2(x2)", SLURM_LOCALID="0"), "--distribution=block"),
    (slurm_env(2, 4, "n[1-2]", "2(x2)", SLURMD_NODENAME="n1"), "--distribution=block"),
    (slurm_env("x", 4), "SLURM_PROCID='x' is not a number"),
])
def test_a_slurm_environment_that_does_not_fit_names_the_variable(env, message):
    config = config_lib.RunConfig(task="clusters", model_dir="unused", num_groups=2,
                                  cluster="slurm", workers_per_group=2)
    with pytest.raises(config_lib.ConfigError, match=re.escape(message)):
        slurm.join(config, environ=env)


def test_join_sets_the_group_the_strategy_and_the_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = config_lib.RunConfig(task="clusters", model_dir="unused", num_groups=2,
                                  cluster="slurm", workers_per_group=2, cluster_port_base=9100)
    joined = slurm.join(config, environ=slurm_env(3, 4, "host"))
    assert (joined.group, joined.strategy) == (1, "multi_worker")
    assert json.loads(os.environ["TF_CONFIG"]) == {
        "cluster": {"worker": ["host:9102", "host:9103"]}, "task": {"type": "worker", "index": 1}}
    with pytest.raises(config_lib.ConfigError, match="--strategy=mirrored cannot run"):
        slurm.join(config_lib.RunConfig(task="clusters", num_groups=2, cluster="slurm",
                                          workers_per_group=2, strategy="mirrored"),
                     environ=slurm_env(0, 4))


def test_hosts_without_ports_count_up_per_host():
    assert slurm.hosts_addresses(["a", "b", "a", "c:7000"], 5000) == [
        "a:5000", "b:5000", "a:5001", "c:7000"]


def test_a_model_dir_the_chief_cannot_write_is_a_config_error(tmp_path):
    (tmp_path / "a_file").write_text("")
    config = config_lib.RunConfig(task="clusters", model_dir=str(tmp_path / "a_file" / "run"))
    with pytest.raises(config_lib.ConfigError, match=re.escape(
            f"--model_dir={tmp_path / 'a_file' / 'run'} is not writable from "
            f"{socket.gethostname()} (NotADirectoryError")):
        train_lib.run(config)


def free_port_base(count, start=20000, stop=60000):
    """A base port with `count` consecutive ports free on localhost."""
    for base in range(start + os.getpid() % 1000 * 20, stop, 97):
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("localhost", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range")


@pytest.mark.slow
def test_a_slurm_task_that_does_not_fit_exits_2_and_writes_nothing(tmp_path):
    model_dir = tmp_path / "run"
    code, output = runs.run([*CLUSTERS, f"--model_dir={model_dir}", "--cluster=slurm",
                             "--num_groups=2", "--workers_per_group=2"],
                            env=slurm_env(0, 3), timeout=120)
    assert code == 2, output[-2000:]
    assert "error: SLURM_STEP_NUM_TASKS=3 is not --num_groups x --workers_per_group" in output
    assert "Traceback" not in output and not model_dir.exists()


def test_the_example_sbatch_script_runs_a_valid_train_command():
    script = (runs.REPO / "configs" / "slurm_lm.sbatch").read_text()
    values = dict(line.split("=", 1)[0:2] for line in script.splitlines()
                  if re.match(r"^[A-Z_]+=", line))
    values = {k: v.split("#")[0].strip() for k, v in values.items()}
    srun = re.search(r"^srun .*", script, re.M | re.S).group(0).replace("\\\n", " ")
    srun = srun.replace("$((N * W))", str(int(values["N"]) * int(values["W"])))
    for name, value in values.items():
        srun = srun.replace(f"${name}", value)
    words = shlex.split(srun)
    assert words[:3] == ["srun", "--ntasks=4", "--distribution=block"]
    train = words[words.index("tf_codistill.train") + 1:]
    flag_values = flags.FlagValues()
    flags_lib.define_flags(flag_values)
    flag_values(["train", *[w.replace("configs/", str(runs.REPO / "configs") + "/")
                            for w in train]])
    config = flags_lib.config_from_flags(flag_values)
    config_lib.check(config)
    assert (config.cluster, config.num_groups, config.workers_per_group) == ("slurm", 2, 2)
    assert config.model_dir == "/shared/runs/lm" and config.task == "lm"


def latest_weights(directory):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(directory)))
    names = [n for n in reader.get_variable_to_shape_map()
             if "/.ATTRIBUTES/VARIABLE_VALUE" in n and "OPTIMIZER_SLOT" not in n
             and not n.startswith("save_counter")]
    return {n: reader.get_tensor(n) for n in names}


@pytest.mark.slow
def test_two_groups_of_two_workers_from_the_slurm_environment(tmp_path):
    """srun --ntasks=4 ... --cluster=slurm --num_groups=2 --workers_per_group=2, on localhost:
    each group its own MultiWorkerMirroredStrategy job with its own TF_CONFIG (the one
    test of two multi-worker groups training at once)."""
    model_dir = tmp_path / "run"
    base = free_port_base(4)
    flags = [*CLUSTERS, f"--model_dir={model_dir}", "--cluster=slurm", "--num_groups=2",
             "--workers_per_group=2", f"--cluster_port_base={base}", "--train_steps=120",
             "--steps_per_loop=40", "--reload_interval=10", "--eval_steps=4"]
    processes, temps = [], []
    for rank in range(4):
        temp = tmp_path / f"tmp{rank}"  # where a non-chief worker keeps its checkpoints
        temp.mkdir()
        temps.append(temp)
        env = slurm_env(rank, 4, "localhost", "4", SLURM_LOCALID=str(rank),
                        SLURMD_NODENAME="localhost", TMPDIR=str(temp))
        processes.append(runs.start(flags, env=env))
    try:
        outputs = [p.communicate(timeout=500)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    assert f"slurm rank 3: group 1 worker 1 of 2 at localhost:{base + 3}" in outputs[3]
    metrics = [runs.metrics(model_dir, group) for group in (0, 1)]
    for group, m in enumerate(metrics):
        assert m["global_step"] == 120
        assert max(runs.checkpoint_steps(model_dir, group, "published")) == 120
        assert m["teacher_reloads"] >= 1 and m["peer_bytes_read"] > 0, m  # each reads the other
        assert m["noise_scale"] > 0  # from the two workers' gradients before the all-reduce
        assert m["workers"] == 2 and 0 < m["allreduce_share"]
        chief = latest_weights(model_dir / f"group_{group}" / "checkpoints")
        [worker_dir] = list(temps[2 * group + 1].glob("tf_codistill_worker_*"))
        worker = latest_weights(worker_dir)
        assert chief.keys() == worker.keys() and len(chief) >= 4
        for name in chief:
            np.testing.assert_array_equal(chief[name], worker[name], err_msg=name)
    assert "The all-reduce between the 2 workers takes" in outputs[0]  # the closing summary
    assert not (model_dir / "launch_config.json").exists()  # no local launcher involved


@pytest.mark.slow
def test_a_worker_that_cannot_see_the_model_dir_stops_the_group_with_exit_2(tmp_path):
    """Worker 1's node 'mounts' another, empty directory at the model_dir's place."""
    base = free_port_base(2)
    processes = []
    for rank, model_dir in enumerate([tmp_path / "shared", tmp_path / "node_local"]):
        flags = [*CLUSTERS, f"--model_dir={model_dir}", "--cluster=slurm",
                 "--workers_per_group=2", f"--cluster_port_base={base}", "--train_steps=20",
                 "--steps_per_loop=10", "--eval_steps=2"]
        processes.append(runs.start(flags, env=slurm_env(rank, 2, "localhost",
                                                         SLURM_LOCALID=str(rank))))
    try:
        outputs = [p.communicate(timeout=300)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 2, output[-3000:]
        assert "is not shared by every worker of group 0: 1 of 2 replicas cannot see" in output
        assert "Traceback" not in output
    assert "worker 1, does not see it" in outputs[1]
    assert not (tmp_path / "shared" / "group_0" / "checkpoints").exists()
