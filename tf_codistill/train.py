r"""Trains a codistillation job: flags -> RunConfig -> train_lib.run.

    python -m tf_codistill.train --flagfile=configs/lm.flags --model_dir=runs/lm

With ``--num_groups=N`` and no ``--group``, this starts the N groups as N local
processes sharing ``--model_dir`` and prints a table of their results. With
``--group=k`` it runs group k alone, so that a cluster scheduler can run each
group as its own job (for example a MultiWorkerMirroredStrategy job with its
own TF_CONFIG). With ``--cluster=slurm`` every srun task finds its group and its
group's TF_CONFIG in the Slurm environment (``cluster/slurm.py``). Flagfiles
layer: later flags win. Every setting's flag comes from its config field
(``tf_codistill/config/`` and each task's model and data sections).
"""

from __future__ import annotations

import dataclasses
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_codistill.utils.allocator import cap_malloc_arenas  # noqa: E402

cap_malloc_arenas()  # before TensorFlow's thread pools exist (utils/allocator.py)

from absl import app, flags, logging  # noqa: E402

from tf_codistill import config as config_lib  # noqa: E402
from tf_codistill.runner import flags as flags_lib  # noqa: E402
from tf_codistill.runner.strategies import TPUUnavailableError  # noqa: E402

FLAGS = flags.FLAGS
flags_lib.define_flags()
flags.DEFINE_bool("baseline", False, "With --num_groups > 1 and no --group: also train one "
                  "group without distillation for the same steps, in <model_dir>/baseline, and "
                  "print it next to the codistilled groups.")
flags.DEFINE_bool("prepare_demo_data", False, "Write Python's own documentation as a WET file "
                  "into <model_dir>/data and train a vocabulary there unless --vocab is given; "
                  "use them as --train_files and --vocab.")


def with_demo_data(config: config_lib.RunConfig) -> config_lib.RunConfig:
    """Points the run at the demo corpus and vocabulary, making them if needed."""
    from tf_codistill.tasks import demo_corpus
    wet, vocab = demo_corpus.prepare(config.model_dir, config.data.vocab,
                                   config.model.vocab_size or 4000)
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, train_files=(wet,), vocab=vocab))


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines drown the progress
    try:
        config = flags_lib.config_from_flags()
        if not config.model_dir:
            raise config_lib.ConfigError("--model_dir is required: the directory that holds "
                                         "the run.")
        config_lib.check(config)
        if config.cluster != "none":
            if FLAGS["group"].present or FLAGS.baseline:
                raise config_lib.ConfigError(
                    f"--cluster={config.cluster} derives each task's group from its rank; "
                    "drop --group (and --baseline: run a baseline as a job of its own).")
            from tf_codistill.cluster import slurm
            config = slurm.join(config)
        launch_all = (config.num_groups > 1 and not FLAGS["group"].present
                      and config.cluster == "none")
        if FLAGS.prepare_demo_data:
            config = with_demo_data(config)
        if launch_all:
            from tf_codistill.cluster import local
            sys.exit(local.run_local_groups(config, baseline=FLAGS.baseline))
        from tf_codistill.runner import train_lib, workers
        try:
            train_lib.run(config)
        except workers.WorkerLostError as error:
            logging.error("%s", error)
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
    except (config_lib.ConfigError, TPUUnavailableError) as error:
        logging.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
