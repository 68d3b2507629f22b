"""The language-model arms shared by the experiments of experiments/.

Every arm trains the model of ``configs/experiment_lm.flags`` for the same
number of steps on the same corpus, so an arm two experiments ask for (the
baseline, or 2-way codistillation reloading every 50 steps from disjoint data)
trains once under one root.
"""

from __future__ import annotations

import os
from typing import Sequence

from tf_codistill import demo_data
from tf_codistill.experiment_lib import Arm

FLAGFILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "configs", "experiment_lm.flags")
CORPUS_LIBRARIES = ("tensorflow", "tf_keras", "numpy", "tensorflow_datasets", "absl")
VOCAB_SIZE = 4000
LABEL_SMOOTHING_WEIGHT = 0.1  # total = CE + w * CE(prior): w/(1+w) ~ the usual epsilon 0.1


def common_flags(root: str, train_steps: int, burn_in_steps: int,
                 extra: Sequence[str] = (), corpus: tuple[str, str] | None = None) -> list[str]:
    """Train flags every arm shares; ``extra`` flags win over the flagfile's.

    ``corpus`` is (WET file, vocabulary); by default the experiments' corpus,
    written with its vocabulary under ``root`` once.
    """
    wet, vocab = corpus or demo_data.prepare(root, "", VOCAB_SIZE, CORPUS_LIBRARIES)
    return [f"--flagfile={FLAGFILE}", f"--train_files={wet}", f"--vocab={vocab}",
            f"--train_steps={train_steps}", f"--burn_in_steps={burn_in_steps}", *extra]


BASELINE = Arm("baseline")
BASELINE_SEED_1 = Arm("baseline_seed1", ("--seed=1",))
LABEL_SMOOTHING_UNIFORM = Arm("label_smoothing_uniform", (
    "--teacher=uniform", f"--distill_weight={LABEL_SMOOTHING_WEIGHT}"))
LABEL_SMOOTHING_UNIGRAM = Arm("label_smoothing_unigram", (
    "--teacher=unigram", f"--distill_weight={LABEL_SMOOTHING_WEIGHT}"))


def codistill(reload_interval: int = 50, partition: str = "disjoint") -> Arm:
    """Two groups, each reloading the other's checkpoint every ``reload_interval`` steps."""
    return Arm(f"codistill_reload{reload_interval}_{partition}",
               (f"--reload_interval={reload_interval}", f"--partition={partition}"),
               num_groups=2)


def two_phase(root: str) -> Arm:
    """A fresh model distilled from the ensemble of the two baselines (phase two)."""
    teachers = BASELINE.group_dirs(root) + BASELINE_SEED_1.group_dirs(root)
    return Arm("two_phase_from_baseline_ensemble",
               ("--teacher=ensemble", f"--teacher_dirs={','.join(teachers)}", "--seed=2",
                "--burn_in_steps=0"))
