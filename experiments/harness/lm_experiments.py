"""The language-model experiments of experiments/ and the arms they share.

Every arm trains the model of ``configs/experiment_lm.flags`` for the same
number of steps on the same corpus, so an arm two experiments ask for (the
baseline, or 2-way codistillation reloading every 50 steps from disjoint data)
trains once under one root. Each experiment writes
``<output_dir>/<name>.{json,png}`` and returns the result.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Sequence

from tf_codistill import config as config_lib
from tf_codistill.tasks import demo_corpus
from tf_codistill.runner import evaluation
from tf_codistill.config import layout
from . import experiment_lib
from .experiment_lib import Arm
from .results_paths import repo_relative

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLAGFILE = os.path.join(REPO, "configs", "experiment_lm.flags")
CORPUS_LIBRARIES = ("tensorflow", "tf_keras", "numpy", "tensorflow_datasets", "absl")
VOCAB_SIZE = 4000
LABEL_SMOOTHING_WEIGHT = 0.1  # total = CE + w * CE(prior): w/(1+w) ~ the usual epsilon 0.1


def define_flags(flags, script: str, root: str = "runs/experiments") -> None:
    """The command-line flags every LM experiment script takes, listed as ``script``'s own."""
    mine = {"module_name": script}
    flags.DEFINE_string("root", root,
                        "Where the arms train (shared by experiments).", **mine)
    flags.DEFINE_string("output_dir", os.path.join(REPO, "experiments", "results"),
                        "Where the JSON result and the plot go.", **mine)
    flags.DEFINE_integer("train_steps", 1000, "Optimizer steps of every arm (per group).", **mine)
    flags.DEFINE_integer("burn_in_steps", 200,
                         "Steps before the distillation term switches on.", **mine)


def common_flags(root: str, train_steps: int, burn_in_steps: int,
                 extra: Sequence[str] = (), corpus: tuple[str, str] | None = None,
                 flagfile: str = FLAGFILE) -> list[str]:
    """Train flags every arm shares; ``extra`` flags win over the flagfile's.

    ``corpus`` is (WET file, vocabulary) of a ``--task=lm`` flagfile; by default
    the experiments' corpus, written with its vocabulary under ``root`` once. A
    flagfile of another task (e.g. configs/experiment_hmm.flags) reads no files.
    """
    flags = [f"--flagfile={flagfile}"]
    if flag_value(flags, "task", "lm") == "lm":
        wet, vocab = corpus or demo_corpus.prepare(root, "", VOCAB_SIZE, CORPUS_LIBRARIES)
        flags += [f"--train_files={wet}", f"--vocab={vocab}"]
    return [*flags, f"--train_steps={train_steps}", f"--burn_in_steps={burn_in_steps}",
            *extra]


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


# --- Time to target: codistillation against the synchronous SGD a user would run instead ---

LR_SCALINGS = ("sqrt", "linear")


def flag_value(flags: Sequence[str], name: str, default: str | None = None) -> str | None:
    """The value of ``--name`` in ``flags`` as absl reads them: flagfiles inlined, later wins."""
    value = default
    for flag in flags:
        if flag.startswith("--flagfile="):
            with open(flag.split("=", 1)[1]) as f:
                lines = [line.strip() for line in f
                         if line.strip() and not line.lstrip().startswith("#")]
            value = flag_value(lines, name, value)
        elif flag.startswith(f"--{name}="):
            value = flag.split("=", 1)[1]
    return value


def scaled_learning_rate(learning_rate: float, factor: int, rule: str) -> float:
    """The learning rate of a batch ``factor`` times larger: x sqrt(factor) or x factor."""
    if rule not in LR_SCALINGS:
        raise ValueError(f"lr_scaling={rule!r}: choose one of {LR_SCALINGS}.")
    return learning_rate * (math.sqrt(factor) if rule == "sqrt" else factor)


def with_seed(arm: Arm, seed: int) -> Arm:
    """``arm`` at ``seed``: seed 0 is the arm itself (the seed every flagfile trains with);
    another seed trains apart, as ``<name>_seed<k>`` with ``--seed=<k>`` last."""
    if seed == 0:
        return arm
    return Arm(f"{arm.name}_seed{seed}", arm.flags + (f"--seed={seed}",), arm.num_groups)


def sync_arm(factor: int, seed: int, batch_size: int, learning_rate: float,
             lr_scaling: str = "sqrt") -> Arm:
    """One synchronous group at ``factor`` x the batch (its hardware: ``factor`` machines)."""
    if factor == 1:  # the arm the other experiments call the baseline
        return with_seed(Arm("baseline"), seed)
    rate = scaled_learning_rate(learning_rate, factor, lr_scaling)
    return with_seed(Arm(f"sync_batch{factor}x_{lr_scaling}",
                         (f"--batch_size={factor * batch_size}", f"--learning_rate={rate:.6g}")),
                     seed)


def codistill_arm(seed: int, num_groups: int = 2, reload_interval: int = 50) -> Arm:
    """``num_groups`` codistilling groups on disjoint data (their hardware: one machine each)."""
    base = codistill(reload_interval)  # shared with the other experiments
    if num_groups != 2:
        base = Arm(f"codistill{num_groups}_reload{reload_interval}", base.flags, num_groups)
    return with_seed(base, seed)


def time_to_target(root, output_dir, train_steps, burn_in_steps, seeds=(0, 1, 2),
                   num_groups=2, batch_scan=(1, 2, 4), lr_scaling="sqrt",
                   target_loss: float | None = None, step_times: dict | None = None,
                   timing_steps: int = 60, timing_repeats: int = 3,
                   allreduce_gbps: float = 0.0, time_whole_batches: bool = True,
                   extra_flags=(), corpus=None, flagfile: str = FLAGFILE,
                   name: str = "time_to_target") -> dict:
    """Steps and time to a target loss: 2-way codistillation against synchronous SGD.

    Arms, each trained for every seed: synchronous SGD at 1x, ``num_groups`` x and the
    ``batch_scan`` multiples of the batch (learning rate scaled by ``lr_scaling``), and
    ``num_groups`` codistilling groups at 1x each. A sync arm at k x the batch stands for
    k machines each computing 1x; a codistilled group owns one machine. Time to target =
    steps x the arm's step time on one machine: the plain step at 1x for every sync arm
    (plus, with ``allreduce_gbps``, a ring all-reduce of the gradients at that
    bandwidth), a codistilled group's step for codistillation, timed alone and
    alternating (``benchmark_step_times``) unless ``step_times`` gives them;
    ``time_whole_batches`` also times each sync arm's whole batch on one machine (for
    reference only).
    The target (``target_loss`` or, by default, the lowest loss that every seed of one
    synchronous arm on at most ``num_groups`` machines reaches) makes that arm the best
    synchronous baseline the ratios refer to; the scan's own target is the loss every seed
    of every scan arm reaches. Writes ``<output_dir>/<name>.{json,png}``.
    """
    start = time.perf_counter()
    flags = common_flags(root, train_steps, burn_in_steps, extra_flags, corpus, flagfile)
    batch_size = int(flag_value(flags, "batch_size", "32"))
    learning_rate = float(flag_value(flags, "learning_rate", "0.001"))
    factors = sorted({1, num_groups, *batch_scan})
    arms: dict[str, dict] = {}
    for factor in factors:
        arms[_sync_label(factor, lr_scaling)] = {
            "kind": "sync", "factor": factor, "machines": factor,
            "in_scan": factor in batch_scan,
            "seeds": {s: sync_arm(factor, s, batch_size, learning_rate, lr_scaling)
                      for s in seeds}}
    codistill_label = f"{num_groups}-way codistillation"
    arms[codistill_label] = {"kind": "codistill", "factor": 1, "machines": num_groups,
                             "in_scan": False,
                             "seeds": {s: codistill_arm(s, num_groups) for s in seeds}}
    single = [a for info in arms.values() for a in info["seeds"].values() if a.num_groups == 1]
    multi = [a for info in arms.values() for a in info["seeds"].values() if a.num_groups > 1]
    waves = [single[i:i + 2] for i in range(0, len(single), 2)] + [[a] for a in multi]
    timings = experiment_lib.train_waves(waves, flags, root)

    reference_dir = arms[_sync_label(1, lr_scaling)]["seeds"][seeds[0]].group_dirs(root)[0]
    group_curves = experiment_lib.score_curves(
        {d: [d] for info in arms.values() for a in info["seeds"].values()
         for d in a.group_dirs(root)}, reference_dir)
    arm_curves = {label: {s: experiment_lib.mean_curve(
                      [group_curves[d] for d in arm.group_dirs(root)])
                      for s, arm in info["seeds"].items()}
                  for label, info in arms.items()}

    measured = {label: {s: [experiment_lib.group_measurements(d) for d in arm.group_dirs(root)]
                        for s, arm in info["seeds"].items()} for label, info in arms.items()}
    if step_times is None:
        variants = timing_variants(flags, batch_size, learning_rate, lr_scaling,
                                   factors if time_whole_batches else [1], num_groups)
        trained = codistill_arm(seeds[0], num_groups).group_dirs(root)
        peers = {"codistill": {g: layout.GroupLayout(d).published
                               for g, d in enumerate(trained) if g}}
        step_times = {"source": "benchmark: each variant trained alone, alternating; the "
                                "codistilled group with its trained peers' snapshots loaded",
                      **benchmark_step_times(variants, root, timing_steps, timing_repeats,
                                             peer_snapshots=peers)}
    parameter_bytes = student_parameter_bytes(reference_dir)
    summary = summarize_time_to_target(
        {label: {k: v for k, v in info.items() if k != "seeds"} for label, info in arms.items()},
        arm_curves, step_times, num_groups, target_loss, allreduce_gbps, parameter_bytes)
    print(format_time_table(summary), flush=True)
    print(format_scan_table(summary["scan"]), flush=True)
    group_dirs = sorted(group_curves)
    result = {
        "experiment": name, "train_flags": list(flags), "seeds": list(seeds),
        "num_groups": num_groups, "lr_scaling": lr_scaling, "batch_size": batch_size,
        "learning_rate": learning_rate,
        "arms": {label: {"kind": info["kind"], "machines": info["machines"],
                         "factor": info["factor"],
                         "model_dirs": {s: a.model_dir(root) for s, a in info["seeds"].items()}}
                 for label, info in arms.items()},
        "group_configs": {d: dataclasses.asdict(evaluation.load_run_config(d))
                          for d in group_dirs},
        "curves": group_curves, "arm_curves": arm_curves, "measured": measured,
        "step_times": step_times, "parameter_bytes": parameter_bytes,
        "allreduce_gbps": allreduce_gbps, "summary": summary,
        "time_model": ("time to target = steps x the step time of one machine: a sync arm at "
                       "k x the batch is k machines each computing 1x (plain step at 1x, plus "
                       "a ring all-reduce of 2 (k-1)/k x the parameters' bytes at "
                       "allreduce_gbps when given, else free); a codistilled group is one "
                       "machine (its step, teacher forward included). Peer checkpoint "
                       "exchange is not charged (every 50 steps, in the background)."),
        "training_waves": timings, "total_seconds": time.perf_counter() - start,
        "environment": experiment_lib.environment()}
    os.makedirs(output_dir, exist_ok=True)
    config_lib.write_json(os.path.join(output_dir, f"{name}.json"), repo_relative(result))
    experiment_lib.plot_curves(
        {f"{label} ({_machines(arms[label]['machines'])})":
         experiment_lib.mean_curve(list(curves.values()))
         for label, curves in arm_curves.items()},
        os.path.join(output_dir, f"{name}.png"),
        f"Time to target: sync SGD vs {num_groups}-way codistillation "
        f"({len(seeds)} seed{'s' if len(seeds) > 1 else ''}, mean)", summary["target_loss"],
        target_label="target (best sync baseline)")
    return result


def _machines(count: int) -> str:
    return f"{count} machine{'s' if count > 1 else ''}"


def _sync_label(factor: int, lr_scaling: str) -> str:
    if factor == 1:
        return "sync SGD, batch 1x (baseline)"
    rule = f"sqrt {factor}" if lr_scaling == "sqrt" else f"{factor}"
    return f"sync SGD, batch {factor}x (lr x {rule})"


def timing_variants(flags, batch_size, learning_rate, lr_scaling, factors, num_groups
                    ) -> dict[str, list[str]]:
    """The train commands whose step time the time model needs, one machine each.

    "plain": a sync step at 1x (one machine's share of any sync arm); "codistill": one
    codistilled group's step with its teacher forward on every step (no burn-in; its
    peers' published snapshots are put in place before it starts, see
    ``benchmark_step_times``), run without its peers' processes; "plain_<k>x": a sync
    arm's whole batch on this one machine, for reference.
    """
    variants = {"plain": [*flags, "--num_groups=1"],
                "codistill": [*flags, *codistill_arm(0, num_groups).flags,
                              f"--num_groups={num_groups}", "--group=0", "--burn_in_steps=0"]}
    for factor in factors:
        if factor > 1:
            variants[f"plain_{factor}x"] = [
                *flags, *sync_arm(factor, 0, batch_size, learning_rate, lr_scaling).flags,
                "--num_groups=1"]
    return variants


def benchmark_step_times(variants: dict[str, list[str]], root: str, steps: int,
                         repeats: int, echo=print,
                         peer_snapshots: dict[str, dict[int, str]] | None = None) -> dict:
    """Median step time of each variant, each trained alone for ``steps`` steps.

    Variants alternate (the order rotates every repeat), each run in a fresh model_dir
    under ``<root>/timing``; a finished run is reused, so an interrupted benchmark
    resumes. ``peer_snapshots``: variant -> {peer group: a published directory} copied
    into the run's model_dir first, so a codistilled group loads real teachers (a
    finished peer's snapshot is never dropped) and its timed steps include their
    forwards; such a run that loaded no teacher is an error. Returns {variant:
    {"median_s", "values_s"}}; every value is one run's median step time (metrics.json).
    """
    peer_snapshots = peer_snapshots or {}
    timing_root = os.path.join(root, "timing")
    os.makedirs(timing_root, exist_ok=True)
    names = list(variants)
    values = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            model_dir = os.path.join(timing_root, f"{name}_rep{repeat}")
            metrics_path = layout.GroupLayout.of(model_dir, _group_flag(variants[name])).metrics
            if not os.path.exists(metrics_path):
                echo(f"timing {name} (repeat {repeat + 1} of {repeats}) ...")
                for peer, published in peer_snapshots.get(name, {}).items():
                    shutil.copytree(published, layout.GroupLayout.of(model_dir, peer).published,
                                    dirs_exist_ok=True)
                command = [sys.executable, "-m", "tf_codistill.train", *variants[name],
                           f"--train_steps={steps}", f"--steps_per_loop={steps}",
                           "--eval_steps=1", "--keep_checkpoints=1",
                           f"--model_dir={model_dir}"]
                with open(os.path.join(timing_root, f"{name}_rep{repeat}.log"), "a") as log:
                    if subprocess.call(command, stdout=log, stderr=subprocess.STDOUT):
                        raise RuntimeError(f"timing run {name} failed; see {log.name}")
            with open(metrics_path) as f:
                metrics = json.load(f)
            if name in peer_snapshots and not metrics.get("teacher_reloads"):
                raise RuntimeError(f"timing run {name} in {model_dir} loaded no peer teacher, "
                                   "so it timed plain steps; delete it and rerun.")
            values[name].append(metrics["step_time_median_s"])
    return {name: {"median_s": float(statistics.median(v)), "values_s": v}
            for name, v in values.items()}


def _group_flag(flags: Sequence[str]) -> int:
    return int(flag_value(flags, "group", "0"))


def student_parameter_bytes(group_dir: str) -> int:
    """float32 bytes of the student's trainable weights (what an all-reduce moves)."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(evaluation.latest_checkpoint(group_dir))
    shapes = reader.get_variable_to_shape_map()
    return 4 * sum(math.prod(shape) for key, shape in shapes.items()
                   if key.startswith("model/student/") and "OPTIMIZER_SLOT" not in key
                   and "/states/" not in key)


def reach(curve: Sequence[dict], target: float) -> tuple[int | None, float | None]:
    """(first checkpoint step at or below target, the step interpolated linearly between
    the checkpoints around the crossing); (None, None) if the curve never gets there."""
    previous = None
    for point in curve:
        if point["loss"] <= target:
            if previous is None or previous["loss"] == point["loss"]:
                return point["step"], float(point["step"])
            fraction = (previous["loss"] - target) / (previous["loss"] - point["loss"])
            return point["step"], previous["step"] + fraction * (point["step"]
                                                                 - previous["step"])
        previous = point
    return None, None


def _mean_half_range(values):
    if not values or any(v is None for v in values):
        return None, None
    return float(sum(values) / len(values)), float((max(values) - min(values)) / 2)


def arm_step_time(info: dict, step_times: dict, allreduce_gbps: float,
                  parameter_bytes: int) -> float:
    """Seconds per step of one machine of the arm (see ``time_to_target``)."""
    if info["kind"] == "codistill":
        return step_times["codistill"]["median_s"]
    seconds = step_times["plain"]["median_s"]
    k = info["machines"]
    if allreduce_gbps and k > 1:
        seconds += 2 * (k - 1) / k * parameter_bytes / (allreduce_gbps * 1e9 / 8)
    return seconds


def summarize_time_to_target(arms: dict[str, dict], arm_curves: dict[str, dict],
                             step_times: dict, num_groups: int,
                             target_loss: float | None = None, allreduce_gbps: float = 0.0,
                             parameter_bytes: int = 0) -> dict:
    """The headline table's figures: steps and time to the target per arm, over seeds.

    ``arms``: label -> {"kind": "sync"|"codistill", "machines", "in_scan"};
    ``arm_curves``: label -> {seed: [{step, loss}]}. Steps are interpolated between
    checkpoints (``reach``); each seed's and the seeds' mean curve's are given.
    """
    def reachable(label):  # the lowest loss every seed of the arm reaches
        return max(evaluation.best_loss(c) for c in arm_curves[label].values())

    candidates = [l for l, a in arms.items() if a["kind"] == "sync"
                  and a["machines"] <= num_groups]
    reference = min(candidates, key=reachable)
    target = reachable(reference) if target_loss is None else float(target_loss)
    rows = {label: _target_row(arms[label], arm_curves[label], target,
                               arm_step_time(arms[label], step_times, allreduce_gbps,
                                             parameter_bytes))
            for label in arms}
    ref = rows[reference]
    for row in rows.values():
        for key in ("steps", "time_s"):
            mine, theirs = row[f"{key}_mean"], ref[f"{key}_mean"]
            row[f"{key}_ratio"] = None if mine is None or not theirs else mine / theirs
    scan_labels = [l for l, a in arms.items() if a["in_scan"]]
    scan_target = max(reachable(l) for l in scan_labels) if scan_labels else None
    scan = {"target_loss": scan_target, "arms": {}}
    previous = None
    for label in sorted(scan_labels, key=lambda l: arms[l]["machines"]):
        row = _target_row(arms[label], arm_curves[label], scan_target,
                          arm_step_time(arms[label], step_times, allreduce_gbps,
                                        parameter_bytes))
        row["steps_ratio_to_previous"] = (None if previous is None or not row["steps_mean"]
                                          or not previous["steps_mean"]
                                          else row["steps_mean"] / previous["steps_mean"])
        scan["arms"][label] = previous = row
    return {"target_loss": target, "reference": reference,
            "target_rule": ("given" if target_loss is not None else
                            "the lowest loss every seed of one sync arm on at most "
                            f"{num_groups} machines reaches"),
            "arms": rows, "scan": scan}


def _target_row(info, curves: dict, target: float, step_time_s: float) -> dict:
    per_seed = {s: reach(c, target)[1] for s, c in curves.items()}
    steps_mean, steps_half = _mean_half_range(list(per_seed.values()))
    mean_curve = experiment_lib.mean_curve(list(curves.values()))
    finals = [c[-1]["loss"] for c in curves.values()]
    return {"machines": info["machines"], "kind": info["kind"],
            "steps_per_seed": per_seed, "steps_mean": steps_mean,
            "steps_half_range": steps_half,
            "steps_of_mean_curve": reach(mean_curve, target)[1],
            "seeds_reaching": sum(v is not None for v in per_seed.values()),
            "step_time_s": step_time_s,
            "time_s_mean": None if steps_mean is None else steps_mean * step_time_s,
            "time_s_half_range": None if steps_half is None else steps_half * step_time_s,
            "final_loss_mean": _mean_half_range(finals)[0],
            "final_loss_half_range": _mean_half_range(finals)[1],
            "best_loss_of_mean_curve": evaluation.best_loss(mean_curve)}


def _pm(mean, half, spec):
    return "never" if mean is None else f"{mean:{spec}} ± {half:{spec}}"


def format_time_table(summary: dict) -> str:
    """The headline: steps and time to target per arm, ratios to the best sync baseline."""
    lines = [f"target {summary['target_loss']:.4f} ({summary['target_rule']}; best sync "
             f"baseline: {summary['reference']}); mean ± half-range over seeds",
             f"{'arm':<40} {'mach':>4} {'steps to target':>16} {'ratio':>5} "
             f"{'step ms':>7} {'time to target s':>17} {'ratio':>5} {'final loss':>15}"]
    for label, row in summary["arms"].items():
        steps = _pm(row["steps_mean"], row["steps_half_range"], ".0f")
        if row["steps_mean"] is None and row["seeds_reaching"]:
            steps = f"never ({row['seeds_reaching']}/{len(row['steps_per_seed'])} reach)"
        ratio = "-" if row["steps_ratio"] is None else f"{row['steps_ratio']:.2f}"
        time_ratio = "-" if row["time_s_ratio"] is None else f"{row['time_s_ratio']:.2f}"
        lines.append(
            f"{label:<40} {row['machines']:>4} {steps:>16} {ratio:>5} "
            f"{1000 * row['step_time_s']:>7.1f} "
            f"{_pm(row['time_s_mean'], row['time_s_half_range'], '.1f'):>17} {time_ratio:>5} "
            f"{_pm(row['final_loss_mean'], row['final_loss_half_range'], '.4f'):>15}")
    return "\n".join(lines)


def format_scan_table(scan: dict) -> str:
    """The batch scan: where doubling the batch stops halving the steps to a fixed target."""
    if not scan["arms"]:
        return ""
    lines = [f"batch scan: steps to {scan['target_loss']:.4f} (the loss every seed of every "
             "scan arm reaches)",
             f"{'arm':<40} {'steps to target':>16} {'vs half the batch':>17}"]
    for label, row in scan["arms"].items():
        ratio = row["steps_ratio_to_previous"]
        lines.append(f"{label:<40} {_pm(row['steps_mean'], row['steps_half_range'], '.0f'):>16}"
                     f" {'-' if ratio is None else f'{ratio:.2f}':>17}")
    return "\n".join(lines)
