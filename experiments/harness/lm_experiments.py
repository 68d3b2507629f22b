"""The language-model experiments of experiments/ and the arms they share.

Every arm trains the model of ``configs/experiment_lm.flags`` for the same
number of steps on the same corpus, so an arm two experiments ask for (the
baseline, or 2-way codistillation reloading every 50 steps from disjoint data)
trains once under one root. Each experiment writes
``<output_dir>/<name>.{json,png}`` and returns the result.
"""

from __future__ import annotations

import os
from typing import Sequence

from tf_codistill.runner import demo_data
from . import experiment_lib
from .experiment_lib import Arm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLAGFILE = os.path.join(REPO, "configs", "experiment_lm.flags")
CORPUS_LIBRARIES = ("tensorflow", "tf_keras", "numpy", "tensorflow_datasets", "absl")
VOCAB_SIZE = 4000
LABEL_SMOOTHING_WEIGHT = 0.1  # total = CE + w * CE(prior): w/(1+w) ~ the usual epsilon 0.1


def define_flags(flags, script: str) -> None:
    """The command-line flags every LM experiment script takes, listed as ``script``'s own."""
    mine = {"module_name": script}
    flags.DEFINE_string("root", "runs/experiments",
                        "Where the arms train (shared by experiments).", **mine)
    flags.DEFINE_string("output_dir", os.path.join(REPO, "experiments", "results"),
                        "Where the JSON result and the plot go.", **mine)
    flags.DEFINE_integer("train_steps", 1000, "Optimizer steps of every arm (per group).", **mine)
    flags.DEFINE_integer("burn_in_steps", 200,
                         "Steps before the distillation term switches on.", **mine)


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


def two_phase_arm(root: str) -> Arm:
    """A fresh model distilled from the ensemble of the two baselines (phase two)."""
    teachers = BASELINE.group_dirs(root) + BASELINE_SEED_1.group_dirs(root)
    return Arm("two_phase_from_baseline_ensemble",
               ("--teacher=ensemble", f"--teacher_dirs={','.join(teachers)}", "--seed=2",
                "--burn_in_steps=0"))


def steps_to_target(root, output_dir, train_steps, burn_in_steps, two_phase=False,
                    extra_flags=(), corpus=None) -> dict:
    """Baseline, label smoothing, 2-way codistillation, 2-baseline ensemble (figure 2a)."""
    arm = codistill()
    waves = [[BASELINE, BASELINE_SEED_1], [LABEL_SMOOTHING_UNIFORM, LABEL_SMOOTHING_UNIGRAM],
             [arm]]
    groups = arm.group_dirs(root)
    curves = {"baseline": BASELINE.group_dirs(root),
              "label smoothing (uniform)": LABEL_SMOOTHING_UNIFORM.group_dirs(root),
              "label smoothing (unigram)": LABEL_SMOOTHING_UNIGRAM.group_dirs(root),
              "2-way codistillation, group 0": groups[:1],
              "2-way codistillation, group 1": groups[1:],
              "ensemble of 2 baselines": (BASELINE.group_dirs(root)
                                          + BASELINE_SEED_1.group_dirs(root))}
    if two_phase:
        waves.append([two_phase_arm(root)])
        curves["two-phase (distilled ensemble)"] = two_phase_arm(root).group_dirs(root)
    return experiment_lib.run_experiment(
        "steps_to_target", root=root, output_dir=output_dir,
        common_flags=common_flags(root, train_steps, burn_in_steps, extra_flags, corpus),
        waves=waves, curves=curves, title="Steps to target: CPU-sized LM, 2 x 256 LSTM")


def staleness(root, output_dir, train_steps, burn_in_steps, reload_intervals=(1, 50, 250),
              extra_flags=(), corpus=None) -> dict:
    """2-way codistillation reloading the peer every N steps (figure 4)."""
    arms = {f"reload every {n} steps": codistill(n) for n in reload_intervals}
    return _compare_codistillation("staleness", arms, "Staleness of the teacher: CPU-sized LM",
                                   root, output_dir, common_flags(
                                       root, train_steps, burn_in_steps, extra_flags, corpus))


def partitioning(root, output_dir, train_steps, burn_in_steps, extra_flags=(),
                 corpus=None) -> dict:
    """2-way codistillation on disjoint halves vs the same data (paper 3.3.2, figure 2b)."""
    arms = {f"{p} data": codistill(partition=p) for p in ("disjoint", "same")}
    return _compare_codistillation("partitioning", arms,
                                   "Data partitioning between groups: CPU-sized LM",
                                   root, output_dir, common_flags(
                                       root, train_steps, burn_in_steps, extra_flags, corpus))


def _compare_codistillation(name, arms: dict[str, Arm], title, root, output_dir, flags):
    """The baseline and codistillation arms, each shown as the mean of its groups."""
    curves, means = {"baseline": BASELINE.group_dirs(root)}, {}
    for label, arm in arms.items():
        members = [f"codistillation, {label}, group {g}" for g in range(arm.num_groups)]
        curves.update(zip(members, ([d] for d in arm.group_dirs(root))))
        means[f"codistillation, {label} (mean of groups)"] = members
    return experiment_lib.run_experiment(
        name, root=root, output_dir=output_dir, common_flags=flags,
        waves=[[BASELINE], *([arm] for arm in arms.values())], curves=curves,
        group_means=means, title=title)
