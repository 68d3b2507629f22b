"""The workers of this group (one process, or W under MultiWorkerMirroredStrategy).

Not to be confused with the peer groups this group distills from (``exchange``):
these are the processes of one synchronous job. Which one is the chief, what
losing one looks like, and whether all see the model_dir.
"""

from __future__ import annotations

import tensorflow as tf

from tf_codistill import config as config_lib
from tf_codistill.utils.collectives import gather_ints


class WorkerLostError(RuntimeError):
    """Another worker of this multi-worker group died or stopped answering."""


# What a collective raises on the other workers when one worker of the group is gone: the
# connection resets (killed process), or the coordination service misses its heartbeats
# (frozen or unreachable host, within its heartbeat timeout, 10 s by default).
WORKER_FAILURES = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                   tf.errors.AbortedError, tf.errors.CancelledError)


def worker_lost_message(config: config_lib.RunConfig, error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    cause = next((" ".join(lines[i:i + 2]) for i, line in enumerate(lines)
                  if "aborted by" in line), lines[-1] if lines else type(error).__name__)
    latest = tf.train.latest_checkpoint(config.layout.checkpoints)
    resume = (f"from its last checkpoint, step {latest.rsplit('-', 1)[1]}" if latest
              else "from scratch (no checkpoint yet)")
    return (f"group {config.group} lost a worker ({type(error).__name__}: {cause}). Every "
            f"worker of a multi_worker group stops; rerun all of the group's workers with "
            f"the same command and TF_CONFIG to resume {resume}.")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The worker that writes what the group shares (published weights, metrics)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)


def check_model_dir_shared(config: config_lib.RunConfig, strategy) -> None:
    """Every worker of a multi-worker group must see the config.json its chief just wrote.

    A worker on a node that does not mount the shared model_dir would restore nothing
    while its chief resumes, and never agree on a peer's weights, so the group would
    silently train without teachers. Two all-gathers (a barrier after the chief's write,
    then each worker's answer) let every worker raise the same ConfigError.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    resolver = strategy.cluster_resolver
    if resolver is None or len(resolver.cluster_spec().as_dict()) == 0:
        return
    gather_ints(strategy, [1])  # the chief has written config.json
    sees = gather_ints(strategy, [int(tf.io.gfile.exists(config.layout.config))])[:, 0]
    if not sees.all():
        raise config_lib.ConfigError(
            f"--model_dir={config.model_dir} is not shared by every worker of group "
            f"{config.group}: {int((sees == 0).sum())} of {len(sees)} replicas cannot see "
            f"{config.layout.config}, which the group's chief wrote (this worker, "
            f"{resolver.task_type} {resolver.task_id}, "
            f"{'sees' if tf.io.gfile.exists(config.layout.config) else 'does not see'} it); "
            "put the model_dir on storage every node mounts at the same path, or a bucket.")
