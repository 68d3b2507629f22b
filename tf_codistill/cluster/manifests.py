"""What a cluster scheduler needs to run N groups x W workers: TFJob manifests, TF_CONFIGs.

``python -m tf_codistill.launch`` (the thin entry point) takes the train
command's flags plus its own, checks them as the train command would, and emits

- ``--emit=kubeflow``: one TFJob (kubeflow.org/v1, Kubeflow training operator)
  per group into ``--output_dir``: W Worker replicas running
  ``python -m tf_codistill.train <the same train flags> --group=k
  --strategy=multi_worker``. The operator sets each pod's TF_CONFIG itself (its
  group's workers only, since each group is its own TFJob). The model_dir is a
  PersistentVolumeClaim mounted in every pod (``--pvc``) or a bucket
  (``--model_dir=gs://...``).
- ``--emit=tf_config``: for any other scheduler, every process's TF_CONFIG and
  command, given the N*W hosts (``--hosts``, group-major: the W workers of group
  0 first), ports as in ``cluster/slurm.py``.

Flagfiles are expanded: a manifest holds every train flag explicitly, so the
image needs the package, not the flagfiles.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Optional, Sequence, TextIO

import tensorflow as tf
from absl import flags

from tf_codistill import config as config_lib
from tf_codistill.cluster import slurm
from tf_codistill.config.files import is_local
from tf_codistill.runner import flags as flags_lib

EMITS = ("kubeflow", "tf_config")
# Set per group or process by the launcher, or meaningless inside a cluster job.
_SET_BY_LAUNCHER = ("group", "strategy", "cluster")
_LOCAL_ONLY = ("baseline", "prepare_demo_data", "plot_curves")
CONTAINER_NAME = "tensorflow"  # the name the TFJob operator looks for


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The train command's flags plus the launcher's own."""
    flags_lib.define_flags(flag_values)
    for name in _LOCAL_ONLY:
        flags.DEFINE_bool(name, False, "Local runs only: refused here.", flag_values=flag_values)
    define = dict(flag_values=flag_values)
    flags.DEFINE_enum("emit", None, list(EMITS), "kubeflow: one TFJob manifest per group in "
                      "--output_dir; tf_config: print every process's TF_CONFIG and command.",
                      **define)
    flags.DEFINE_string("output_dir", "", "--emit=kubeflow: where the manifests go "
                        "(<job_name>-group-<k>.yaml); --emit=tf_config: also writes "
                        "tf_configs.json there.", **define)
    flags.DEFINE_string("image", "", "--emit=kubeflow: container image with tf_codistill "
                        "installed.", **define)
    flags.DEFINE_string("pvc", "", "--emit=kubeflow: PersistentVolumeClaim (ReadWriteMany) "
                        "holding --model_dir, mounted at --mount_path in every pod; empty: "
                        "--model_dir is a bucket (gs://, s3://).", **define)
    flags.DEFINE_string("mount_path", "/runs", "--emit=kubeflow: where --pvc is mounted.",
                        **define)
    flags.DEFINE_string("job_name", "codistill", "--emit=kubeflow: TFJob name prefix "
                        "(<job_name>-group-<k>).", **define)
    flags.DEFINE_string("namespace", "default", "--emit=kubeflow: Kubernetes namespace.",
                        **define)
    flags.DEFINE_integer("gpus_per_worker", 0, "--emit=kubeflow: nvidia.com/gpu limit per "
                         "worker pod (0: none).", lower_bound=0, **define)
    flags.DEFINE_list("hosts", [], "--emit=tf_config: the N*W hosts (host or host:port), "
                      "group-major; a bare host listens on --cluster_port_base plus the "
                      "number of its earlier entries.", **define)


def train_args(flag_values: flags.FlagValues) -> list[str]:
    """The train flags given (flagfiles expanded), less those the launcher sets."""
    names = [name for name in _train_flag_names(flag_values)
             if flag_values[name].present and name not in _SET_BY_LAUNCHER]
    return [flag_values[name].serialize() for name in names]


def _train_flag_names(flag_values) -> list[str]:
    scratch = flags.FlagValues()
    flags_lib.define_flags(scratch)
    return [name for name in scratch if name in flag_values]


def group_args(args: Sequence[str], group: int) -> list[str]:
    return [*args, f"--group={group}", "--strategy=multi_worker"]


def check(flag_values: flags.FlagValues) -> config_lib.RunConfig:
    """The run's config, checked as the train command would, and the launcher's flags."""
    if flag_values.emit is None:
        raise config_lib.ConfigError(f"--emit is required: one of {EMITS}.")
    for name in _LOCAL_ONLY:
        if flag_values[name].value:
            raise config_lib.ConfigError(f"--{name} is for local runs of tf_codistill.train; "
                                         "drop it (run a baseline as a job of its own).")
    for name in _SET_BY_LAUNCHER:
        if flag_values[name].present:
            raise config_lib.ConfigError(f"--{name} is set for each process by the launcher "
                                         "(--group=k --strategy=multi_worker); drop it.")
    config = flags_lib.config_from_flags(flag_values)
    config_lib.check(config)
    if not config.model_dir:
        raise config_lib.ConfigError("--model_dir is required: the directory every process "
                                     "shares (on --pvc, or a gs:// bucket).")
    if not config.trainer.eval_steps:
        raise config_lib.ConfigError(
            "--eval_steps=0 (the whole eval set) needs a length all workers of a "
            "multi_worker group agree on; pass --eval_steps=N.")
    if flag_values.emit == "kubeflow":
        _check_kubeflow(flag_values, config)
    else:
        _check_hosts(flag_values, config)
    return config


def _check_kubeflow(flag_values, config):
    if not flag_values.image:
        raise config_lib.ConfigError("--emit=kubeflow needs --image: a container image with "
                                     "tf_codistill installed (see BUILD.md).")
    if not flag_values.output_dir:
        raise config_lib.ConfigError("--emit=kubeflow needs --output_dir: where the manifests "
                                     "go.")
    remote = not is_local(config.model_dir)
    mount = flag_values.mount_path.rstrip("/") + "/"
    if flag_values.pvc and not config.model_dir.startswith(mount):
        raise config_lib.ConfigError(
            f"--model_dir={config.model_dir} is not on the volume --pvc={flag_values.pvc} "
            f"mounted at --mount_path={flag_values.mount_path}; pass "
            f"--model_dir={mount}<run name>.")
    if not flag_values.pvc and not remote:
        raise config_lib.ConfigError(
            f"--model_dir={config.model_dir} would be each pod's own disk, and groups share "
            "nothing but the model_dir: pass --pvc=<ReadWriteMany claim> (model_dir under "
            "--mount_path) or a bucket --model_dir=gs://<bucket>/<run>.")


def _check_hosts(flag_values, config):
    expected = config.num_groups * config.workers_per_group
    if len(flag_values.hosts) != expected:
        raise config_lib.ConfigError(
            f"--hosts names {len(flag_values.hosts)} processes, but --num_groups x "
            f"--workers_per_group = {config.num_groups} x {config.workers_per_group} = "
            f"{expected}; pass {expected} hosts (repeat a host to run several processes on it).")


def tfjob(config: config_lib.RunConfig, args: Sequence[str], group: int, *, image: str,
          pvc: str = "", mount_path: str = "/runs", job_name: str = "codistill",
          namespace: str = "default", gpus_per_worker: int = 0) -> dict:
    """The TFJob of one group: W workers, the same train flags plus --group."""
    container = {
        "name": CONTAINER_NAME,
        "image": image,
        "command": ["python", "-m", "tf_codistill.train"],
        "args": group_args(args, group),
    }  # no TF_CPP_MIN_LOG_LEVEL: a level set outside turns the command's quiet start off
    if gpus_per_worker:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus_per_worker}}
    pod = {"containers": [container]}
    if pvc:
        container["volumeMounts"] = [{"name": "model-dir", "mountPath": mount_path}]
        pod["volumes"] = [{"name": "model-dir", "persistentVolumeClaim": {"claimName": pvc}}]
    labels = {"app": "tf-codistill", "codistill-job": job_name,
              "codistill-group": str(group)}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": f"{job_name}-group-{group}", "namespace": namespace,
                     "labels": labels},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None"},
            "tfReplicaSpecs": {"Worker": {
                "replicas": config.workers_per_group,
                # A restarted pod reruns the same command, which resumes from the
                # group's last checkpoint.
                "restartPolicy": "OnFailure",
                "template": {
                    "metadata": {"labels": dict(labels),
                                 "annotations": {"sidecar.istio.io/inject": "false"}},
                    "spec": pod}}}},
    }


def tf_configs(config: config_lib.RunConfig, hosts: Sequence[str]) -> list[dict]:
    """For every process, group-major: its group, worker, address and TF_CONFIG."""
    addresses = slurm.hosts_addresses(hosts, config.cluster_port_base)
    return [{"group": p.group, "worker": p.worker, "address": p.workers[p.worker],
             "tf_config": p.tf_config()}
            for p in slurm.placements(addresses, config.num_groups, config.workers_per_group)]


def run(flag_values: flags.FlagValues, out: Optional[TextIO] = None) -> None:
    """Checks everything, then emits; raises ConfigError before writing anything."""
    out = out or sys.stdout
    config = check(flag_values)
    args = train_args(flag_values)
    if flag_values.emit == "kubeflow":
        import yaml
        tf.io.gfile.makedirs(flag_values.output_dir)
        for group in range(config.num_groups):
            job = tfjob(config, args, group, image=flag_values.image, pvc=flag_values.pvc,
                        mount_path=flag_values.mount_path, job_name=flag_values.job_name,
                        namespace=flag_values.namespace,
                        gpus_per_worker=flag_values.gpus_per_worker)
            path = os.path.join(flag_values.output_dir, f"{job['metadata']['name']}.yaml")
            with tf.io.gfile.GFile(path, "w") as f:
                f.write(yaml.safe_dump(job, sort_keys=False))
            print(f"wrote {path}", file=out)
        print(f"start them with: kubectl apply -f {flag_values.output_dir}", file=out)
        return
    processes = tf_configs(config, flag_values.hosts)
    for process in processes:
        command = shlex.join(["python", "-m", "tf_codistill.train",
                              *group_args(args, process["group"])])
        print(f"# group {process['group']} worker {process['worker']} on "
              f"{process['address']}\nTF_CONFIG={shlex.quote(json.dumps(process['tf_config']))} "
              f"{command}", file=out)
    if flag_values.output_dir:
        tf.io.gfile.makedirs(flag_values.output_dir)
        config_lib.write_json(os.path.join(flag_values.output_dir, "tf_configs.json"),
                              processes)
