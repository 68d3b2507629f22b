"""What a finished group's measurements say about scaling it: more workers, or codistillation.

From the gradient noise scale B_noise measured while training (``core.noise_scale``), the
group's global batch B and, for a group whose replicas all-reduce, the measured share of a step
the all-reduce takes. McCandlish et al. (2018): the steps to a given loss go as
S(B) = S_min (1 + B_noise / B), so twice the workers at the same per-worker batch need

    S(2B) / S(B) = (1 + B_noise / 2B) / (1 + B_noise / B)

of the steps: 0.5 far below the noise scale, 0.75 at it, 1 far past it. Anil et al. (2018) find
codistillation's gain where a larger batch stops paying. ``advise`` turns the numbers into the
closing summary's sentences (and metrics.json's ``scaling_advice``); ``note`` is the summary's
plug-in.
"""

from __future__ import annotations

from tf_codistill.core.noise_scale import measurement_count

PAYS = 0.7  # predicted time ratio of twice the workers at or below which adding them pays
PAYS_LITTLE = 0.85  # at or above which it hardly pays
PAST_CRITICAL = 0.75  # a doubled batch needing this share of the steps or more: B >= B_noise
FEW_MEASUREMENTS = 10  # below this many, the summary calls the noise scale a rough figure


def doubled_batch_steps(noise_scale: float, batch: float) -> float:
    """S(2B) / S(B): the share of the steps a doubled batch needs to reach the same loss."""
    ratio = noise_scale / batch
    return (1 + ratio / 2) / (1 + ratio)


def ring_traffic_growth(workers: int) -> float | None:
    """How much a worker's all-reduce traffic grows from ``workers`` to twice as many, for a
    ring all-reduce (2 (n - 1) / n of the gradient's bytes each way); None for one worker,
    whose all-reduce, if any, never crossed a network."""
    if workers < 2:
        return None
    return (2 * workers - 1) / (2 * (workers - 1))


def advise(*, noise_scale: float | None, batch_rows: int, units_per_row: int = 1,
           unit: str = "examples", workers: int = 1, replicas: int = 1,
           allreduce_share: float | None = None, allreduce_seconds: float | None = None,
           step_seconds: float | None = None, interval: int | None = None,
           averaging_steps: int | None = None, measurements: int | None = None,
           name: object = 0) -> dict:
    """The numbers and the sentences of one group's scaling advice.

    ``noise_scale`` and ``batch_rows`` count rows (a row is ``units_per_row`` ``unit``);
    ``allreduce_share`` is the all-reduce's measured share of a step (None: not measured);
    ``interval``, ``averaging_steps`` and ``measurements``: how the noise scale was measured
    (one replica's interval; the steps its moving averages span; how many measurements they
    hold), for the sentence on what it rests.
    """
    advice = {"noise_scale_rows": noise_scale, "batch_rows": batch_rows, "workers": workers,
              "allreduce_share": allreduce_share, "doubled_batch_steps": None,
              "doubled_workers_time": None, "adding_workers": None, "try_codistillation": None}
    if noise_scale is None:
        advice["lines"] = [f"group {name}: the gradient noise scale was not measured "
                           "(--noise_scale_interval=0, no step past its warm-up, or too few "
                           "to estimate |G|^2 > 0): "
                           "no scaling advice."]
        return advice
    steps = doubled_batch_steps(noise_scale, batch_rows)
    growth = ring_traffic_growth(workers)
    time_ratio = None
    if growth is not None and allreduce_share is not None:
        time_ratio = steps * (1 - allreduce_share + allreduce_share * growth)
    judged = steps if time_ratio is None else time_ratio
    advice.update(doubled_batch_steps=steps, doubled_workers_time=time_ratio,
                  adding_workers=("likely" if judged <= PAYS else
                                  "unlikely" if judged >= PAYS_LITTLE else "partly"),
                  try_codistillation=judged >= PAST_CRITICAL)
    lines = [f"group {name}: gradient noise scale ~{_amount(noise_scale, units_per_row, unit)} "
             f"against a global batch of {_amount(batch_rows, units_per_row, unit)}: the batch "
             f"is {batch_rows / noise_scale:.2g}x the noise scale.",
             "  S(B) = S_min (1 + B_noise/B) predicts that a doubled batch "
             f"({_amount(2 * batch_rows, units_per_row, unit)}) would need {steps:.2f}x the "
             f"steps to the same loss (saving {1 - steps:.0%})."]
    if allreduce_share is not None:
        lines.append(_allreduce(allreduce_share, allreduce_seconds, step_seconds, replicas,
                                workers))
    lines.append("  " + _verdict(advice, steps, time_ratio, growth))
    lines.append("  " + _basis(replicas, interval, averaging_steps, measurements,
                               time_ratio is not None))
    advice["lines"] = lines
    return advice


def from_metrics(metrics: dict, name: object = None) -> dict:
    """``advise`` on what a group's metrics.json recorded."""
    return advise(noise_scale=metrics.get("noise_scale"), batch_rows=metrics["batch_rows"],
                  units_per_row=metrics.get("units_per_row", 1),
                  unit=metrics.get("throughput_unit", "examples"),
                  workers=metrics.get("workers", 1), replicas=metrics.get("replicas", 1),
                  allreduce_share=metrics.get("allreduce_share"),
                  allreduce_seconds=metrics.get("allreduce_seconds_median"),
                  step_seconds=metrics.get("step_time_median_s"),
                  interval=metrics.get("noise_scale_interval"),
                  averaging_steps=metrics.get("noise_scale_averaging_steps"),
                  measurements=_measurements(metrics),
                  name=metrics.get("group", 0) if name is None else name)


def _measurements(metrics: dict) -> int | None:
    if "global_step" not in metrics or "noise_scale_warmup_steps" not in metrics:
        return None  # a metrics.json from before the count
    return measurement_count(metrics["global_step"], metrics.get("noise_scale_interval"),
                             metrics.get("replicas", 1), metrics["noise_scale_warmup_steps"],
                             metrics["batch_rows"])


def note(group) -> list[str]:
    """The closing summary's lines for one group (``runner.summary.GroupResult``); none for a
    metrics.json written before the advice existed."""
    if "batch_rows" not in group.metrics:
        return []
    return from_metrics(group.metrics, name=group.name)["lines"]


def _amount(rows, units_per_row, unit):
    if units_per_row == 1:
        return f"{rows:,.0f} {unit}"
    return f"{rows:,.0f} rows ({rows * units_per_row:,.0f} {unit})"


def _allreduce(share, seconds, step_seconds, replicas, workers):
    where = f"{workers} workers" if workers > 1 else f"{replicas} replicas in one process"
    detail = ""
    if seconds is not None and step_seconds:
        detail = f", {seconds * 1e3:.1f} ms against a median step of {step_seconds * 1e3:.1f} ms"
    return (f"  The all-reduce between the {where} takes {share:.0%} of a step (a gradient-sized "
            f"all-reduce timed alone once per loop{detail}).")


def _verdict(advice, steps, time_ratio, growth):
    if time_ratio is not None:
        doubled = (f"twice the workers should reach the same loss in about {time_ratio:.2f}x "
                   "the time")
    elif growth is None:
        doubled = (f"twice the workers would need {steps:.2f}x the steps, which pays in time "
                   f"if the all-reduce between machines takes under {1 - steps:.0%} of the "
                   "doubled group's step")
    else:
        doubled = f"twice the workers would need {steps:.2f}x the steps"
    verdict = {"likely": "Adding workers is likely to pay",
               "partly": "Adding workers would pay only in part",
               "unlikely": "Adding workers is unlikely to pay"}[advice["adding_workers"]]
    codistill = ("a codistillation group (the added workers as a second group exchanging "
                 "checkpoints, --num_groups=2) is worth trying instead"
                 if advice["try_codistillation"] else
                 "a codistillation group is unlikely to do better here")
    return f"{verdict}: {doubled}; {codistill}."


def _every_nth_batch(interval: int | None) -> str:
    """'every batch', 'every 2nd batch', ..., 'every 50th batch'; 'every K-th batch' unknown."""
    if interval is None:
        return "every K-th batch"
    if interval == 1:
        return "every batch"
    suffix = ("th" if interval % 100 in (11, 12, 13)
              else {1: "st", 2: "nd", 3: "rd"}.get(interval % 10, "th"))
    return f"every {interval}{suffix} batch"


def _basis(replicas, interval, averaging_steps, measurements, timed):
    source = (f"the {replicas} replicas' gradients before and after the all-reduce, every step"
              if replicas > 1 else f"the two halves of {_every_nth_batch(interval)}")
    if measurements is not None:
        source += f" ({measurements:,} measurements"
        source += ": few, so a rough figure)" if measurements < FEW_MEASUREMENTS else ")"
    time = ("the time assumes a ring all-reduce, whose traffic per worker grows as 2(n-1)/n"
            if timed else "no link between machines was measured")
    averaged = f", averaged over up to the last {averaging_steps} steps" if averaging_steps else ""
    return (f"An estimate: McCandlish et al.'s B_simple from {source}{averaged}; exact only for a Hessian proportional to the "
            "identity, it grows as the loss falls, S(B) assumes a learning rate retuned for the "
            f"new batch, and {time}.")
