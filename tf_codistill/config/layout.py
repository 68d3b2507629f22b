"""The names inside a model_dir, in one place.

    <model_dir>/
      launch_config.json    the resolved config the local launcher gave its processes
      group_<k>/            one per group (the launcher's baseline: <model_dir>/baseline/group_0)
        config.json         the resolved RunConfig of the run that created it
        checkpoints/        step, weights, optimizer slots (tf.train.CheckpointManager)
        published/          the weights peers read, with a verified manifest (exchange.snapshots)
        logs/               TensorBoard; logs/codistill/ holds teacher reloads and staleness
        lease.json          its running owner (host, pid, since), renewed by a heartbeat
                            (utils.lease); lease-worker-<i>.json per worker of a multi-worker group
        metrics.json        written last: the group finished
        export/             the student as a SavedModel (written as export.tmp-*, then renamed)
      data/                 --prepare_demo_data's corpus and vocabulary (made once, under *.lease)
"""

from __future__ import annotations

import dataclasses
import os

BASELINE = "baseline"


@dataclasses.dataclass(frozen=True)
class GroupLayout:
    """Paths of one group's directory."""

    directory: str

    @classmethod
    def of(cls, model_dir: str, group: int) -> "GroupLayout":
        return cls(os.path.join(model_dir, f"group_{group}"))

    @property
    def config(self) -> str:
        return os.path.join(self.directory, "config.json")

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.directory, "checkpoints")

    @property
    def published(self) -> str:
        return os.path.join(self.directory, "published")

    @property
    def logs(self) -> str:
        return os.path.join(self.directory, "logs")

    @property
    def codistill_logs(self) -> str:
        return os.path.join(self.directory, "logs", "codistill")

    @property
    def metrics(self) -> str:
        return os.path.join(self.directory, "metrics.json")

    @property
    def export(self) -> str:
        return os.path.join(self.directory, "export")

    def lease(self, worker: str = "") -> str:
        """The lease of the group's owner; ``worker`` (e.g. "worker-1") names one worker's."""
        return os.path.join(self.directory, f"lease-{worker}.json" if worker else "lease.json")


def group_dir(model_dir: str, group: int) -> str:
    return GroupLayout.of(model_dir, group).directory


def launch_config(model_dir: str) -> str:
    """The resolved config the local launcher hands to the processes it starts."""
    return os.path.join(model_dir, "launch_config.json")


def baseline_model_dir(model_dir: str) -> str:
    """Where the launcher's --baseline group (synchronous SGD alone) lives."""
    return os.path.join(model_dir, BASELINE)
