"""Timing train steps side by side: alternating blocks, wall-clock and process CPU, one table.

Shared by step_cost.py (the LM) and criteo_step_cost.py: every variant is compiled outside the
timing, then blocks of ``steps`` steps cycle through all variants ``repeats`` times, so machine
noise hits all alike. Figures are ratios to the fastest variant named "plain, ...".
"""

import statistics
import time

from absl import flags

flags.DEFINE_list("distill_fractions", [], "Extra codistilled variants that distill (and run the "
                  "teacher on) this share of the batch rows, as --distill_fraction does.")


def distilled_rows(batch_size: int) -> list[int]:
    """The row counts of --distill_fractions for a batch of ``batch_size`` rows."""
    return [max(1, round(float(f) * batch_size)) for f in flags.FLAGS.distill_fractions]


def time_variants(models: dict, x, y, steps: int, repeats: int):
    """(compile seconds, wall-clock and process-CPU seconds per step per block) by variant."""
    compile_s = {}
    for name, model in models.items():
        start = time.perf_counter()
        model.train_on_batch(x, y)  # trace and compile outside the timing
        model.train_on_batch(x, y)
        compile_s[name] = time.perf_counter() - start
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(steps):
                model.train_on_batch(x, y)
            wall[name].append((time.perf_counter() - start) / steps)
            cpu[name].append((time.process_time() - cpu_start) / steps)
    return compile_s, wall, cpu


def print_tables(compile_s, wall, cpu, units_per_step: int, unit: str) -> None:
    """The wall-clock and the process-CPU table."""
    _table("wall-clock", wall, compile_s, units_per_step, unit)
    _table("process CPU time (all threads; less sensitive to other jobs on a shared machine)",
           cpu, compile_s, units_per_step, unit)


def print_paired_ratios(title, wall, cpu, pairs) -> None:
    """Each (variant, reference) pair's ratio block by block: the two ran in adjacent blocks,
    so the ratio of each pair of blocks sees one state of the machine. Median, quartiles and
    range of the per-block ratios, wall-clock and process CPU."""
    print(f"\n{title}: per-block ratios to the reference, median [quartiles] (range)")
    width = max(len(name) for name, _ in pairs) + 2
    for times, kind in ((wall, "wall"), (cpu, "CPU")):
        for name, reference in pairs:
            ratios = sorted(a / b for a, b in zip(times[name], times[reference]))
            quartiles = (statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1
                         else ratios * 3)
            print(f"{kind:<5}{name:<{width}} {statistics.median(ratios):6.3f} "
                  f"[{quartiles[0]:.3f}, {quartiles[2]:.3f}] ({ratios[0]:.3f}-{ratios[-1]:.3f})"
                  f"  of {reference}")


def _table(title, times, compile_s, units_per_step, unit):
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    base_name = min((n for n in medians if n.startswith("plain, ")), key=medians.get)
    base = medians[base_name]
    width = max(len(name) for name in times) + 2
    print(f"\n{title}: ratios to the fastest plain step ({base_name}, median "
          f"{base * 1e3:.1f} ms, {units_per_step / base:,.0f} {unit}/s)")
    print(f"{'variant':<{width}} {'median':>7} {'min':>6} {'spread':>7} {'ms':>8} "
          f"{'first 2 s':>9}")
    for name, samples in times.items():
        median = medians[name]
        spread = (max(samples) - min(samples)) / median
        print(f"{name:<{width}} {median / base:7.3f} {min(samples) / base:6.3f} {spread:7.1%} "
              f"{median * 1e3:8.1f} {compile_s[name]:9.1f}")
