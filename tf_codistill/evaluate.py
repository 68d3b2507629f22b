r"""Evaluates trained groups alone and as an ensemble (mean predicted probability).

    python -m tf_codistill.evaluate --group_dirs=runs/a/group_0,runs/b/group_0
    python -m tf_codistill.evaluate --group_dirs=runs/a/group_0 --curve --output=curve.json

The held-out data, batch size and ``--eval_steps`` are those of the first
group's config.json unless overridden, so every model is scored on the same
stream. ``--curve`` scores every checkpoint the groups kept at a common step
(train with ``--keep_checkpoints=0``).
"""

from __future__ import annotations

from tf_codistill.runner.command_line import prepare_process

prepare_process()  # before TensorFlow loads: tf_keras, malloc arenas, a quiet start

import dataclasses  # noqa: E402

from absl import flags  # noqa: E402

from tf_codistill import config as config_lib  # noqa: E402
from tf_codistill.runner import command_line  # noqa: E402

SECTION = "evaluate"
FLAGS = flags.FLAGS
flags.DEFINE_list("group_dirs", [], "Trained group directories (<model_dir>/group_<k>).",
                  module_name=SECTION)
flags.DEFINE_bool("curve", False, "Score every kept checkpoint, not only the latest.",
                  module_name=SECTION)
flags.DEFINE_integer("eval_steps", None, "Held-out batches (0: one pass); default: the first "
                     "group's --eval_steps.", module_name=SECTION)
flags.DEFINE_string("output", "", "Write the results as JSON here.", module_name=SECTION)


def evaluate(group_dirs, curve=False, eval_steps=None, strategy=None) -> dict:
    """{"members": [...], "ensemble": ...}, each a loss or a curve, per group dir."""
    import tensorflow as tf

    from tf_codistill.runner import evaluation
    if not group_dirs:
        raise config_lib.ConfigError("--group_dirs is empty: pass one or more trained group "
                                     "directories, e.g. runs/demo/group_0,runs/demo/group_1.")
    configs = [evaluation.load_run_config(d) for d in group_dirs]
    evaluation.check_same_model(configs, "--group_dirs")
    eval_config = configs[0]
    if eval_steps is not None:
        eval_config = dataclasses.replace(eval_config, trainer=dataclasses.replace(
            eval_config.trainer, eval_steps=eval_steps))
    evaluator = evaluation.Evaluator(eval_config, strategy or tf.distribute.get_strategy())

    def score(dirs):
        if curve:
            return evaluator.curve(dirs)
        return evaluator.loss([evaluation.latest_checkpoint(d) for d in dirs])

    results = {"group_dirs": list(group_dirs),
               "members": [score([d]) for d in group_dirs]}
    if len(group_dirs) > 1:
        results["ensemble"] = score(group_dirs)
    return results


def format_results(results: dict) -> str:
    from tf_codistill.core.losses import perplexity
    rows = [(d, m) for d, m in zip(results["group_dirs"], results["members"])]
    if "ensemble" in results:
        rows.append(("ensemble (mean probability)", results["ensemble"]))
    lines = [f"{'model':<40} {'step':>6} {'loss':>8} {'perplexity':>11}"]
    for name, value in rows:
        points = value if isinstance(value, list) else [{"step": "last", "loss": value}]
        for point in points:
            lines.append(f"{name:<40} {point['step']:>6} {point['loss']:>8.4f} "
                         f"{perplexity(point['loss']):>11.2f}")
    return "\n".join(lines)


def main(argv):
    del argv
    try:
        results = evaluate(FLAGS.group_dirs, FLAGS.curve, FLAGS.eval_steps)
    except config_lib.ConfigError as error:
        raise command_line.UsageError(str(error)) from None
    print(format_results(results), flush=True)
    if FLAGS.output:
        config_lib.write_json(FLAGS.output, results)


if __name__ == "__main__":
    command_line.run(main, lambda: {SECTION: command_line.flags_of_module(SECTION)})
