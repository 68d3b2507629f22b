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

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tf_codistill import config as config_lib  # noqa: E402
from tf_codistill.cluster import manifests  # noqa: E402

manifests.define_flags(flags.FLAGS)


def main(argv):
    del argv
    try:
        manifests.run(flags.FLAGS)
    except config_lib.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
