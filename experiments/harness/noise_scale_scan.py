"""The gradient noise scale along a trained arm, next to what the batch scan measured.

For each kept checkpoint step S of a trained group, a copy of that checkpoint is resumed
with the train command for K more steps measuring B_simple every step
(``--noise_scale_interval=1``; the run's metrics.json holds the moving averages'
ratio). The held-out loss at S comes from the arm's curve; the scan's answer at that loss
is the ratio of the steps the 2x and the 1x arm need to reach it, which
S(B) = S_min (1 + B_noise / B) predicts from the measured noise scale as
(1 + B_noise / 2B) / (1 + B_noise / B).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Sequence

from experiments.harness import lm_experiments
from tf_codistill.config import layout


def resume_copy(group_dir: str, step: int, model_dir: str) -> None:
    """A new model_dir whose group 0 holds only ``group_dir``'s checkpoint at ``step``."""
    source = os.path.join(group_dir, "checkpoints")
    target = os.path.join(layout.group_dir(model_dir, 0), "checkpoints")
    os.makedirs(target, exist_ok=True)
    for name in os.listdir(source):
        if name.startswith(f"ckpt-{step}."):
            shutil.copy2(os.path.join(source, name), target)
    with open(os.path.join(target, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "ckpt-{step}"\n'
                f'all_model_checkpoint_paths: "ckpt-{step}"\n')


def measure(group_dir: str, steps: Sequence[int], flags: Sequence[str], root: str,
            measure_steps: int = 200, parallel: int = 2, echo=print) -> dict[int, dict]:
    """{S: the resumed run's noise-scale metrics} for each checkpoint step S; a finished
    run under ``root`` is reused."""
    pending = list(steps)
    results = {}
    while pending:
        wave, pending = pending[:parallel], pending[parallel:]
        running = []
        for step in wave:
            model_dir = os.path.join(root, f"from{step}")
            if not os.path.exists(layout.GroupLayout.of(model_dir, 0).metrics):
                shutil.rmtree(model_dir, ignore_errors=True)
                resume_copy(group_dir, step, model_dir)
                echo(f"noise scale from step {step}: {measure_steps} steps ...")
                log = open(f"{model_dir}.log", "w")  # pylint: disable=consider-using-with
                running.append((log, subprocess.Popen(
                    [sys.executable, "-m", "tf_codistill.train", *flags,
                     f"--train_steps={step + measure_steps}",
                     f"--steps_per_loop={measure_steps}", "--noise_scale_interval=1",
                     "--keep_checkpoints=1", "--eval_steps=1", f"--model_dir={model_dir}"],
                    stdout=log, stderr=subprocess.STDOUT)))
        for log, process in running:
            if process.wait():
                raise RuntimeError(f"a noise-scale run failed; see {log.name}")
            log.close()
        for step in wave:
            with open(layout.GroupLayout.of(os.path.join(root, f"from{step}"), 0).metrics) as f:
                metrics = json.load(f)
            results[step] = {k: metrics.get(k) for k in
                             ("noise_scale", "grad_norm_sq", "grad_trace_cov", "global_step")}
    return results


def predicted_doubling_ratio(noise_scale: float, batch: float) -> float:
    """S(2B) / S(B) under S(B) = S_min (1 + B_noise / B)."""
    return (1 + noise_scale / (2 * batch)) / (1 + noise_scale / batch)


def next_to_scan(measured: dict[int, dict], arm_curves: dict, batch_rows: int,
                 tokens_per_row: int, seed: str = "0") -> list[dict]:
    """Each measurement with the held-out loss at its step (``seed``'s 1x curve) and the
    scan's steps ratio 2x/1x to that loss (the seeds' mean curves)."""
    one = arm_curves["sync SGD, batch 1x (baseline)"]
    two = arm_curves["sync SGD, batch 2x (lr x sqrt 2)"]
    from experiments.harness.experiment_lib import mean_curve
    one_mean, two_mean = mean_curve(list(one.values())), mean_curve(list(two.values()))
    rows = []
    for step, metrics in sorted(measured.items()):
        loss = next((p["loss"] for p in one[seed] if p["step"] == step), None)
        reach_one = lm_experiments.reach(one_mean, loss)[1] if loss is not None else None
        reach_two = lm_experiments.reach(two_mean, loss)[1] if loss is not None else None
        noise = metrics["noise_scale"]
        rows.append({
            "step": step, "held_out_loss": loss, "noise_scale_rows": noise,
            "noise_scale_tokens": None if noise is None else noise * tokens_per_row,
            "base_batch_rows": batch_rows,
            "predicted_2x_over_1x_steps": (None if noise is None or noise < 0 else
                                           predicted_doubling_ratio(noise, batch_rows)),
            "scan_2x_over_1x_steps": (reach_two / reach_one if reach_one and reach_two
                                      else None),
            **{k: metrics[k] for k in ("grad_norm_sq", "grad_trace_cov")}})
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'step':>5} {'held-out':>8} {'B_simple rows':>13} {'tokens':>8} "
             f"{'x base':>6} {'2x/1x steps predicted':>21} {'scan':>5}"]
    for r in rows:
        noise = r["noise_scale_rows"]
        lines.append(
            f"{r['step']:>5} {r['held_out_loss'] or float('nan'):>8.4f} "
            f"{noise if noise is not None else float('nan'):>13.0f} "
            f"{r['noise_scale_tokens'] or float('nan'):>8.0f} "
            f"{(noise or float('nan')) / r['base_batch_rows']:>6.1f} "
            f"{r['predicted_2x_over_1x_steps'] or float('nan'):>21.2f} "
            f"{r['scan_2x_over_1x_steps'] or float('nan'):>5.2f}")
    return "\n".join(lines)
