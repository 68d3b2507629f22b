r"""Trains copies of one model that codistill: each group (a synchronous tf.distribute job)
adds a term pulling its predictions toward its peers' checkpoints, reloaded every
--reload_interval steps.

  python -m tf_codistill.train --flagfile=configs/demo.flags          # the demo
  python -m tf_codistill.train --flagfile=configs/lm.flags --train_files='cc/*.wet.gz' \
      --vocab=cc/vocab.model --model_dir=runs/lm

--num_groups=N without --group starts the N groups as local processes sharing --model_dir;
--group=k runs one group (one cluster job each), --cluster=slurm finds it in Slurm's
environment. Rerun the same command to resume. Flagfiles layer: later flags win.
"""

from tf_codistill.runner.command_line import prepare_process

prepare_process()  # before TensorFlow loads: tf_keras, malloc arenas, a quiet start

import dataclasses  # noqa: E402
import sys  # noqa: E402

from absl import flags  # noqa: E402

from tf_codistill import config as config_lib  # noqa: E402
from tf_codistill.runner import command_line  # noqa: E402
from tf_codistill.runner import flags as flags_lib  # noqa: E402
from tf_codistill.runner.strategies import TPUUnavailableError  # noqa: E402

FLAGS = flags.FLAGS
flags_lib.define_flags()
flags.DEFINE_bool("baseline", False, "With --num_groups > 1 and no --group: also train one "
                  "group without distillation for the same steps, in <model_dir>/baseline, and "
                  "print it next to the codistilled groups.", module_name=flags_lib.RUN_SECTION)
flags.DEFINE_bool("prepare_demo_data", False, "Write Python's own documentation as a WET file "
                  "into <model_dir>/data and train a vocabulary there unless --vocab is given; "
                  "use them as --train_files and --vocab.", module_name=flags_lib.RUN_SECTION)
flags.DEFINE_bool("plot_curves", False, "With --num_groups > 1 and no --group: at the end, score "
                  "every group's (and the baseline's) kept checkpoints on group 0's held-out "
                  "data and draw them in <model_dir>/curves.png (and curves.json); "
                  "--keep_checkpoints=0 keeps one per --steps_per_loop.",
                  module_name=flags_lib.RUN_SECTION)


def with_demo_data(config: config_lib.RunConfig) -> config_lib.RunConfig:
    """Points the run at the demo corpus and vocabulary, making them if needed."""
    from tf_codistill.tasks import demo_corpus
    wet, vocab = demo_corpus.prepare(config.model_dir, config.data.vocab,
                                   config.model.vocab_size or 4000)
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, train_files=(wet,), vocab=vocab))


def main(argv):
    del argv
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
            sys.exit(local.run_local_groups(config, baseline=FLAGS.baseline,
                                            plot_curves=FLAGS.plot_curves))
        from tf_codistill.runner import train_lib, workers
        try:
            metrics = train_lib.run(config)
        except workers.WorkerLostError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        if FLAGS[flags_lib.CLOSING_SUMMARY_FLAG].value:
            from tf_codistill.runner import summary
            print("\n".join(summary.closing_lines(summary.one_group_run(config, metrics))),
                  flush=True)
    except (config_lib.ConfigError, TPUUnavailableError) as error:
        raise command_line.UsageError(str(error)) from None


if __name__ == "__main__":
    command_line.run(main, flags_lib.help_sections)
