r"""Time to target: 2-way codistillation against the synchronous SGD a user would run instead.

On the CPU-sized LM of configs/experiment_lm.flags, for every seed:
  * synchronous SGD at 1x the batch (the baseline), at N x the batch (the same hardware as
    N codistilling groups) and at the --batch_scan multiples, the learning rate scaled by
    --lr_scaling (sqrt by default);
  * N codistilling groups at 1x each, on disjoint data, reloading every 50 steps;
then scores every kept checkpoint on the same held-out documents, times one machine's step of
each arm alone (alternating, --timing_repeats times) and prints the headline: steps and time
to the target (by default the lowest loss every seed of one sync arm on at most N machines
reaches) with ratios to that best synchronous baseline, mean and half-range over seeds, and
the batch scan's steps to a target every scan arm reaches. Time = steps x one machine's step
time (a sync arm at k x the batch is k machines each computing 1x; --allreduce_gbps adds a
ring all-reduce of the gradients at that bandwidth).

    python experiments/time_to_target.py --seeds=0,1,2      # the full experiment
    python experiments/time_to_target.py --arm_flagfile=configs/experiment_hmm.flags \
        --root=runs/time_to_target_hmm --name=time_to_target_hmm --train_steps=3000
        # the same on a generated language: unlimited data, known entropy floor
    # -> experiments/results/time_to_target.{json,png}; arms train under runs/time_to_target
    # (a root of its own: arms trained before --seed fixed the LM's initialization and
    # document order must not be reused). Rerunning resumes: finished arms are reused.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from experiments.harness import lm_experiments  # noqa: E402

FLAGS = flags.FLAGS
lm_experiments.define_flags(flags, sys.argv[0], root="runs/time_to_target")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every arm.")
flags.DEFINE_integer("num_groups", 2, "Codistilling groups (and the sync arm at this many x "
                     "the batch: the same hardware).")
flags.DEFINE_list("batch_scan", ["1", "2", "4"], "Batch multiples of the sync batch scan.")
flags.DEFINE_enum("lr_scaling", "sqrt", lm_experiments.LR_SCALINGS,
                  "Learning rate of a k x larger batch: x sqrt(k) or x k.")
flags.DEFINE_float("target_loss", 0.0, "Target validation loss; 0: the lowest loss every "
                   "seed of one sync arm on at most --num_groups machines reaches.")
flags.DEFINE_integer("timing_steps", 60, "Steps of each timing run.")
flags.DEFINE_integer("timing_repeats", 3, "Timing runs per variant, alternating.")
flags.DEFINE_float("allreduce_gbps", 0.0, "Interconnect of the sync arms' machines in Gb/s "
                   "for a ring all-reduce of the gradients; 0: free.")
flags.DEFINE_string("name", "time_to_target", "Name of the JSON and PNG written.")
flags.DEFINE_string("arm_flagfile", lm_experiments.FLAGFILE,
                    "Train flags of every arm: configs/experiment_lm.flags (real English) or "
                    "configs/experiment_hmm.flags (a generated language with a known floor).")
flags.DEFINE_multi_string("extra_flag", [], "Train flags every arm adds (e.g. "
                          "--extra_flag=--steps_per_loop=50).")


def main(argv):
    del argv
    result = lm_experiments.time_to_target(
        FLAGS.root, FLAGS.output_dir, FLAGS.train_steps, FLAGS.burn_in_steps,
        seeds=[int(s) for s in FLAGS.seeds], num_groups=FLAGS.num_groups,
        batch_scan=[int(k) for k in FLAGS.batch_scan], lr_scaling=FLAGS.lr_scaling,
        target_loss=FLAGS.target_loss or None, timing_steps=FLAGS.timing_steps,
        timing_repeats=FLAGS.timing_repeats, allreduce_gbps=FLAGS.allreduce_gbps,
        extra_flags=FLAGS.extra_flag, flagfile=FLAGS.arm_flagfile, name=FLAGS.name)
    print(f"total {result['total_seconds'] / 60:.1f} min; results in {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)
