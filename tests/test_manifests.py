"""tf_codistill.launch: one TFJob per group for Kubernetes, every TF_CONFIG for other schedulers."""

import json
import re
import shlex

import pytest
import yaml
from absl import flags

from tests.helpers import runs
from tf_codistill import config as config_lib
from tf_codistill.runner import flags as flags_lib
from tf_codistill.cluster import manifests

TRAIN = ["--task=clusters", "--batch_size=32", "--hidden_units=32", "--train_steps=500"]


def launch(argv, capsys=None):
    flag_values = flags.FlagValues()
    manifests.define_flags(flag_values)
    flag_values(["launch", *argv])
    manifests.run(flag_values)
    return capsys.readouterr().out if capsys else None


def parse_train(args):
    """The config the train command would build from a manifest's args."""
    flag_values = flags.FlagValues()
    flags_lib.define_flags(flag_values)
    flag_values(["train", *args])
    return flags_lib.config_from_flags(flag_values)


def test_one_tfjob_per_group_with_the_shared_volume_and_the_same_train_flags(tmp_path, capsys):
    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--task=clusters\n--batch_size=32\n--reload_interval=25\n")
    output = launch(["--emit=kubeflow", "--num_groups=3", "--workers_per_group=2",
                     f"--output_dir={tmp_path / 'k8s'}", "--image=registry.example/tc:0.1",
                     "--pvc=codistill-runs", "--gpus_per_worker=4", f"--flagfile={flagfile}",
                     "--model_dir=/runs/lm", "--hidden_units=32,16", "--train_steps=500"],
                    capsys)
    files = sorted((tmp_path / "k8s").glob("*.yaml"))
    assert [f.name for f in files] == [f"codistill-group-{g}.yaml" for g in range(3)]
    assert f"kubectl apply -f {tmp_path / 'k8s'}" in output
    for group, path in enumerate(files):
        assert "&id" not in path.read_text()  # plain YAML, no anchors
        job = yaml.safe_load(path.read_text())
        assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "TFJob")
        assert job["metadata"]["name"] == f"codistill-group-{group}"
        [(replica_type, replicas)] = job["spec"]["tfReplicaSpecs"].items()
        assert replica_type == "Worker" and replicas["replicas"] == 2
        pod = replicas["template"]["spec"]
        [container] = pod["containers"]
        assert container["name"] == "tensorflow" and container["image"] == "registry.example/tc:0.1"
        assert container["command"] == ["python", "-m", "tf_codistill.train"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
        assert container["volumeMounts"] == [{"name": "model-dir", "mountPath": "/runs"}]
        assert "env" not in container  # the train command's own quiet start filters the log
        assert pod["volumes"] == [{"name": "model-dir",
                                   "persistentVolumeClaim": {"claimName": "codistill-runs"}}]
        assert not any(a.startswith("--flagfile") for a in container["args"])
        config = parse_train(container["args"])  # what each pod's train command runs
        assert (config.group, config.strategy, config.num_groups) == (group, "multi_worker", 3)
        assert config.model_dir == "/runs/lm" and config.model.hidden_units == (32, 16)
        assert config.codistill.reload_interval == 25 and config.trainer.train_steps == 500
        assert config.workers_per_group == 2 and config.cluster == "none"


def test_a_bucket_model_dir_needs_no_volume(tmp_path):
    launch(["--emit=kubeflow", "--num_groups=2", f"--output_dir={tmp_path}", "--image=i",
            "--model_dir=gs://bucket/runs/lm", *TRAIN])
    job = yaml.safe_load((tmp_path / "codistill-group-1.yaml").read_text())
    pod = job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]
    assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0]
    assert "--model_dir=gs://bucket/runs/lm" in pod["containers"][0]["args"]
    assert job["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 1


def test_tf_config_for_every_process_of_every_group(tmp_path, capsys):
    output = launch(["--emit=tf_config", "--num_groups=2", "--workers_per_group=2",
                     "--hosts=a,b,a,c:7000", "--cluster_port_base=5000", f"--output_dir={tmp_path}",
                     "--model_dir=/shared/run", *TRAIN], capsys)
    processes = json.loads((tmp_path / "tf_configs.json").read_text())
    assert [(p["group"], p["worker"], p["address"]) for p in processes] == [
        (0, 0, "a:5000"), (0, 1, "b:5000"), (1, 0, "a:5001"), (1, 1, "c:7000")]
    assert processes[3]["tf_config"] == {"cluster": {"worker": ["a:5001", "c:7000"]},
                                         "task": {"type": "worker", "index": 1}}
    commands = [line for line in output.splitlines() if line.startswith("TF_CONFIG=")]
    assert len(commands) == 4
    words = shlex.split(commands[2])
    assert json.loads(words[0].split("=", 1)[1]) == processes[2]["tf_config"]
    config = parse_train(words[4:])
    assert (config.group, config.strategy, config.model_dir) == (1, "multi_worker", "/shared/run")


@pytest.mark.parametrize("argv, message", [
    (["--num_groups=2"], "--emit is required"),
    (["--emit=kubeflow", "--model_dir=/runs/x", "--pvc=c"], "needs --image"),
    (["--emit=kubeflow", "--image=i", "--model_dir=runs/x"], "pass --pvc=<ReadWriteMany claim>"),
    (["--emit=kubeflow", "--image=i", "--pvc=c", "--model_dir=/data/x"],
     "is not on the volume --pvc=c mounted at --mount_path=/runs"),
    (["--emit=kubeflow", "--image=i", "--pvc=c", "--model_dir=/runs/x", "--group=1"],
     "--group is set for each process by the launcher"),
    (["--emit=kubeflow", "--image=i", "--pvc=c", "--model_dir=/runs/x", "--baseline"],
     "--baseline is for local runs"),
    (["--emit=tf_config", "--model_dir=/runs/x", "--num_groups=2", "--hosts=a,b,c"],
     "--hosts names 3 processes, but --num_groups x --workers_per_group = 2 x 1 = 2"),
    (["--emit=tf_config", "--model_dir=/runs/x", "--num_groups=1", "--temperature=0",
      "--hosts=a"], "--temperature=0.0 is out of range"),
    (["--emit=tf_config", "--model_dir=/runs/x", "--hosts=a", "--eval_steps=0"],
     "--eval_steps=0 (the whole eval set) needs a length all workers"),
])
def test_bad_launcher_input_names_the_flag_and_writes_nothing(tmp_path, argv, message):
    output_dir = tmp_path / "out"
    with pytest.raises(config_lib.ConfigError, match=re.escape(message)):
        launch([*argv, f"--output_dir={output_dir}", *TRAIN])
    assert not output_dir.exists()


@pytest.mark.slow
def test_the_launch_command_exits_2_on_bad_input_and_writes_manifests_otherwise(tmp_path):
    command = ["-m", "tf_codistill.launch", "--emit=kubeflow", "--num_groups=2",
               f"--output_dir={tmp_path / 'k8s'}", "--model_dir=/runs/x", "--pvc=c", *TRAIN]
    process = runs.subprocess.run(
        [runs.sys.executable, *command], cwd=runs.REPO, capture_output=True, text=True,
        timeout=120)
    assert process.returncode == 2 and "error: --emit=kubeflow needs --image" in process.stderr
    assert not (tmp_path / "k8s").exists()
    process = runs.subprocess.run(
        [runs.sys.executable, *command, "--image=i"], cwd=runs.REPO, capture_output=True,
        text=True, timeout=120)
    assert process.returncode == 0, process.stderr[-2000:]
    assert len(list((tmp_path / "k8s").glob("*.yaml"))) == 2
