r"""Emits what a cluster scheduler needs to run N groups x W workers (cluster/manifests.py).

    python -m tf_codistill.launch --emit=kubeflow --num_groups=2 --workers_per_group=4 \
        --image=REGISTRY/tf_codistill:0.1 --pvc=codistill-runs --output_dir=k8s/ \
        --flagfile=configs/lm.flags --model_dir=/runs/lm ...    # then: kubectl apply -f k8s/
    python -m tf_codistill.launch --emit=tf_config --num_groups=2 --workers_per_group=2 \
        --hosts=a,b,c,d --flagfile=configs/lm.flags --model_dir=/shared/runs/lm

Every other flag is a train flag, checked here as tf_codistill.train would.
(Local groups as local processes: ``python -m tf_codistill.train --num_groups=N``.)
"""

from __future__ import annotations

from tf_codistill.runner.command_line import prepare_process

prepare_process()  # before TensorFlow loads: tf_keras, malloc arenas, a quiet start

from absl import flags  # noqa: E402

from tf_codistill import config as config_lib  # noqa: E402
from tf_codistill.cluster import manifests  # noqa: E402
from tf_codistill.runner import command_line  # noqa: E402
from tf_codistill.runner import flags as flags_lib  # noqa: E402

manifests.define_flags(flags.FLAGS)


def help_sections() -> dict:
    """The launcher's own flags, then the train command's."""
    return {"launch": command_line.flags_of_module(manifests.__name__),
            **flags_lib.help_sections()}


def main(argv):
    del argv
    try:
        manifests.run(flags.FLAGS)
    except config_lib.ConfigError as error:
        raise command_line.UsageError(str(error)) from None


if __name__ == "__main__":
    command_line.run(main, help_sections)
