r"""Trains a codistillation job: flags -> RunConfig -> train_lib.run.

    python -m tf_codistill.train --flagfile=configs/lm.flags --model_dir=runs/lm

With ``--num_groups=N`` and no ``--group``, this starts the N groups as N local
processes sharing ``--model_dir`` and prints a table of their results. With
``--group=k`` it runs group k alone, so that a cluster scheduler can run each
group as its own job (for example a MultiWorkerMirroredStrategy job with its
own TF_CONFIG). Flagfiles layer: later flags win.
"""

from __future__ import annotations

import dataclasses
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from tf_codistill import config as config_lib  # noqa: E402
from tf_codistill.losses import DISTILLATION_LOSSES  # noqa: E402
from tf_codistill.strategies import STRATEGIES, TPUUnavailableError  # noqa: E402
from tf_codistill.topology import TOPOLOGIES  # noqa: E402

FLAGS = flags.FLAGS

# The run.
flags.DEFINE_enum("task", "lm", ["lm", "criteo", "imagenet", "clusters"],
                  "Set-up to train: the paper's LM, Criteo or ImageNet, or the tiny clusters "
                  "task used by tests.")
flags.DEFINE_string("model_dir", None, "Directory holding everything the run makes; rerun "
                    "the same command to resume.")
flags.DEFINE_integer("num_groups", 1, "Groups (model copies) that codistill.")
flags.DEFINE_integer("group", None, "Run only this group (0-based); unset with "
                     "--num_groups > 1 starts every group as a local process.")
flags.DEFINE_enum("strategy", "default", STRATEGIES, "tf.distribute strategy inside a group.")
flags.DEFINE_string("tpu", "", "TPU name or grpc:// address for --strategy=tpu.")
flags.DEFINE_bool("baseline", False, "With --num_groups > 1 and no --group: also train one "
                  "group without distillation for the same steps, in <model_dir>/baseline, and "
                  "print it next to the codistilled groups.")
flags.DEFINE_bool("prepare_demo_data", False, "Write Python's own documentation as a WET file "
                  "into <model_dir>/data and train a vocabulary there unless --vocab is given; "
                  "use them as --train_files and --vocab.")
# The trainer.
flags.DEFINE_integer("train_steps", 1000, "Optimizer steps per group.")
flags.DEFINE_integer("batch_size", 32, "Global batch size of one group.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate.")
flags.DEFINE_enum("optimizer", "adam", config_lib.OPTIMIZERS, "Optimizer.")
flags.DEFINE_float("momentum", 0.9, "Momentum of --optimizer=momentum.")
flags.DEFINE_integer("warmup_steps", 0, "Linear learning-rate warm-up steps.")
flags.DEFINE_list("lr_decay_boundaries", [], "Steps at which the learning rate drops x0.1.")
flags.DEFINE_integer("steps_per_loop", 50, "Steps between checkpoints and progress lines.")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept per group; 0 keeps one per "
                     "--steps_per_loop, from which tf_codistill.evaluate draws validation "
                     "curves.")
flags.DEFINE_integer("eval_steps", 50, "Evaluation batches at the end (0: the whole set).")
flags.DEFINE_integer("seed", 0, "Seed for initialization and data order.")
# Codistillation.
flags.DEFINE_enum("distill_loss", "cross_entropy", sorted(DISTILLATION_LOSSES),
                  "psi: soft-target cross entropy (the paper's), KL at a temperature, or "
                  "squared error between logits.")
flags.DEFINE_float("distill_weight", 1.0, "Weight of the distillation term.")
flags.DEFINE_float("temperature", 1.0, "Softmax temperature of cross_entropy and kl.")
flags.DEFINE_integer("burn_in_steps", 0, "Steps trained on the task loss alone.")
flags.DEFINE_integer("reload_interval", 50, "Steps between reloads of peer checkpoints "
                     "(and between publishes of this group's weights).")
flags.DEFINE_enum("topology", "all_to_all", TOPOLOGIES, "Which peers each group reads.")
flags.DEFINE_enum("teacher_precision", "float32", config_lib.PRECISIONS,
                  "Precision of the published teacher weights and of the teacher copies' "
                  "forward pass (int8 weights compute in bfloat16).")
flags.DEFINE_enum("partition", "disjoint", config_lib.PARTITIONS,
                  "Groups read disjoint partitions of the data, or the same data.")
flags.DEFINE_enum("teacher", "peers", config_lib.TEACHERS,
                  "What the distillation term pulls toward: the peer groups' predictions, or, "
                  "as the paper's label-smoothing baselines, the uniform or unigram "
                  "distribution of the training targets; or, for two-phase distillation, "
                  "the ensemble of the trained groups in --teacher_dirs.")
flags.DEFINE_list("teacher_dirs", [], "--teacher=ensemble: trained group directories (e.g. "
                  "runs/a/group_0,runs/b/group_0) whose mean prediction is the fixed teacher.")
flags.DEFINE_float("staleness_warning_s", 600.0, "Warn when a peer published nothing new "
                   "for this many seconds.")
# Data.
flags.DEFINE_list("train_files", [], "Training files (globs allowed).")
flags.DEFINE_list("eval_files", [], "Held-out files; empty: a held-out partition of "
                  "--train_files.")
flags.DEFINE_string("data_dir", "", "ImageNet TFRecords (train-*-of-*, validation-*-of-*).")
flags.DEFINE_string("vocab", "", "Word-piece vocabulary (tokenizer model file).")
flags.DEFINE_integer("seq_len", 32, "Tokens per LM batch row.")
flags.DEFINE_integer("min_paragraph_words", 0, "Long-paragraph filter: paragraphs shorter "
                     "than this are dropped; 0: the data pipeline's default (30).")
flags.DEFINE_float("validation_fraction", 0.01, "Share of --train_files documents held out "
                   "for evaluation (by hash of the record id) when --eval_files is empty.")
# The model.
flags.DEFINE_integer("vocab_size", 0, "LM vocabulary size; 0: from --vocab.")
flags.DEFINE_integer("embedding_dim", 256, "LM input embedding size.")
flags.DEFINE_integer("units", 1024, "LSTM units per layer.")
flags.DEFINE_integer("num_layers", 2, "LSTM layers.")
flags.DEFINE_bool("layer_norm", True, "Layer-normalized LSTM cells.")
flags.DEFINE_list("hidden_units", [], "Widths of a DNN's hidden layers.")
flags.DEFINE_integer("hash_buckets", 100_000, "Criteo: hash buckets per categorical feature.")
flags.DEFINE_enum("image_model", "resnet50", ["resnet50", "small_resnet"],
                  "ImageNet classifier (small_resnet is for CPU tests).")
flags.DEFINE_integer("image_size", 224, "Image side in pixels.")
flags.DEFINE_integer("num_classes", 1000, "Classes of a classifier.")
flags.DEFINE_float("weight_decay", 1e-4, "L2 weight decay of the image models' kernels.")
flags.DEFINE_enum("weight_decay_schedule", "constant", config_lib.WEIGHT_DECAY_SCHEDULES,
                  "Factor on the models' regularization losses (weight decay) by step: "
                  "constant x1, or step_with_lr, Sodhani et al. (2021)'s accounting for "
                  "codistillation's own regularization: x1, x0.1 from the first "
                  "--lr_decay_boundaries step, 0 from the second (needs two boundaries).")


def config_from_flags() -> config_lib.RunConfig:
    if not FLAGS.model_dir:
        raise app.UsageError("--model_dir is required: the directory that holds the run.")
    return config_lib.RunConfig(
        task=FLAGS.task, model_dir=FLAGS.model_dir, num_groups=FLAGS.num_groups,
        group=FLAGS.group or 0, strategy=FLAGS.strategy, tpu=FLAGS.tpu,
        trainer=config_lib.TrainerConfig(
            train_steps=FLAGS.train_steps, batch_size=FLAGS.batch_size,
            learning_rate=FLAGS.learning_rate, optimizer=FLAGS.optimizer,
            momentum=FLAGS.momentum,
            warmup_steps=FLAGS.warmup_steps,
            lr_decay_boundaries=tuple(int(b) for b in FLAGS.lr_decay_boundaries),
            weight_decay_schedule=FLAGS.weight_decay_schedule,
            steps_per_loop=FLAGS.steps_per_loop, keep_checkpoints=FLAGS.keep_checkpoints,
            eval_steps=FLAGS.eval_steps,
            seed=FLAGS.seed),
        codistill=config_lib.CodistillConfig(
            distill_loss=FLAGS.distill_loss, distill_weight=FLAGS.distill_weight,
            temperature=FLAGS.temperature, burn_in_steps=FLAGS.burn_in_steps,
            reload_interval=FLAGS.reload_interval, topology=FLAGS.topology,
            teacher_precision=FLAGS.teacher_precision, partition=FLAGS.partition,
            teacher=FLAGS.teacher, teacher_dirs=tuple(FLAGS.teacher_dirs),
            staleness_warning_s=FLAGS.staleness_warning_s),
        data=config_lib.DataConfig(
            train_files=tuple(FLAGS.train_files), eval_files=tuple(FLAGS.eval_files),
            data_dir=FLAGS.data_dir, vocab=FLAGS.vocab, seq_len=FLAGS.seq_len,
            min_paragraph_words=FLAGS.min_paragraph_words,
            validation_fraction=FLAGS.validation_fraction),
        model=config_lib.ModelConfig(
            vocab_size=FLAGS.vocab_size, embedding_dim=FLAGS.embedding_dim, units=FLAGS.units,
            num_layers=FLAGS.num_layers, layer_norm=FLAGS.layer_norm,
            hidden_units=tuple(int(u) for u in FLAGS.hidden_units),
            hash_buckets=FLAGS.hash_buckets, image_model=FLAGS.image_model,
            image_size=FLAGS.image_size, num_classes=FLAGS.num_classes,
            weight_decay=FLAGS.weight_decay))


def with_demo_data(config, argv):
    """Points the run at the demo corpus and vocabulary, making them if needed."""
    from tf_codistill import demo_data
    wet, vocab = demo_data.prepare(config.model_dir, config.data.vocab,
                                   config.model.vocab_size or 4000)
    data = dataclasses.replace(config.data, train_files=(wet,), vocab=vocab)
    argv = [*argv, f"--train_files={wet}", f"--vocab={vocab}", "--noprepare_demo_data"]
    return dataclasses.replace(config, data=data), argv


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines drown the progress
    config, argv = config_from_flags(), sys.argv[1:]
    try:
        config_lib.check_choices(config)
        if FLAGS.prepare_demo_data:
            config, argv = with_demo_data(config, argv)
        if FLAGS.num_groups > 1 and FLAGS.group is None:
            from tf_codistill import launch
            sys.exit(launch.run_local_groups(argv, config, baseline=FLAGS.baseline))
        from tf_codistill import train_lib
        train_lib.run(config)
    except (config_lib.ConfigError, TPUUnavailableError) as error:
        logging.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
