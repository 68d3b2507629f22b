"""The smallest real codistillation: two copies in one process vs a baseline.

    python -m tf_codistill.quickstart

Trains, on the same examples and for the same number of steps, (a) one MLP
alone and (b) two MLPs of the same architecture that codistill (Algorithm 1 of
Anil et al. 2018, all copies in one process), on a noisy-label classification
task generated here, and prints the validation cross entropy and accuracy of
each. Runs in under a minute on 2 CPU cores.
"""

from __future__ import annotations

from tf_codistill.runner.command_line import prepare_process

prepare_process()  # before TensorFlow loads: tf_keras, malloc arenas, a quiet start

import dataclasses  # noqa: E402

import tf_keras as keras  # noqa: E402
from absl import flags  # noqa: E402

from tf_codistill.runner import command_line  # noqa: E402

from tf_codistill.core.model import CodistillModel  # noqa: E402
from tf_codistill.tasks import clusters  # noqa: E402
from tf_codistill.core.teachers import InProcessPeers  # noqa: E402


@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
    data: clusters.ClustersData = clusters.ClustersData()
    hidden_units: int = 256
    batch_size: int = 64
    epochs: int = 40
    learning_rate: float = 1e-3
    distill_weight: float = 1.0
    burn_in_steps: int = 200


def make_mlp(config: QuickstartConfig, seed: int) -> keras.Model:
    return clusters.make_mlp(config.data.num_features, config.data.num_classes,
                             (config.hidden_units, config.hidden_units), seed)


def train(config: QuickstartConfig, codistill: bool) -> dict[str, float]:
    """Trains one model (or two codistilling copies); returns the student's eval."""
    (x, y), (x_eval, y_eval) = clusters.make_data(config.data)
    peers = InProcessPeers([make_mlp(config, config.data.seed + 2)]) if codistill else None
    model = CodistillModel(make_mlp(config, config.data.seed + 1), peers,
                           distill_weight=config.distill_weight,
                           burn_in_steps=config.burn_in_steps)
    model.compile(keras.optimizers.Adam(config.learning_rate),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    model.fit(x, y, batch_size=config.batch_size, epochs=config.epochs, verbose=0,
              shuffle=True)
    return model.evaluate(x_eval, y_eval, verbose=0, return_dict=True)


def run(config: QuickstartConfig) -> dict[str, dict[str, float]]:
    return {"baseline": train(config, codistill=False),
            "codistilled": train(config, codistill=True)}


def format_results(results: dict[str, dict[str, float]]) -> str:
    lines = [f"{'model':<12} {'eval cross entropy':>19} {'eval accuracy':>14}"]
    for name, metrics in results.items():
        lines.append(f"{name:<12} {metrics['loss']:>19.4f} {metrics['accuracy']:>14.4f}")
    return "\n".join(lines)


FLAGS = flags.FLAGS
SECTION = "quickstart"
flags.DEFINE_integer("epochs", QuickstartConfig.epochs, "Passes over the training set.",
                     module_name=SECTION)
flags.DEFINE_integer("seed", 0, "Seed for data and initialization.", module_name=SECTION)


def main(argv):
    del argv
    config = QuickstartConfig(data=clusters.ClustersData(seed=FLAGS.seed), epochs=FLAGS.epochs)
    print(format_results(run(config)))


if __name__ == "__main__":
    command_line.run(main, lambda: {SECTION: command_line.flags_of_module(SECTION)})
