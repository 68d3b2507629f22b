r"""What a real link costs each arm: two one-core machines in network namespaces, shaped by tc.

    sudo python benchmarks/interconnect.py                  # the experiment's model, ~30-60 min
    python benchmarks/interconnect.py --rates=0.1,unshaped --repeats=1 --plain_loops=3 \
        --extra_flag=--units=128 --extra_flag=--vocab_size=128 --extra_flag=--reload_interval=10

At each bandwidth (Gb/s; "unshaped" is the bare veth pair; one run of each arm, re-shaped
between its loops) it times the synchronous 2x arm as
a two-worker MultiWorkerMirroredStrategy group over the link, two codistilling groups whose
snapshots cross it through an HTTP relay, the 1x arm on one machine, and single snapshot
exchanges (publish, poll, copy across, verified load); then prints one table, measured
figures left and, right of the bar, the per-byte costs scaled to the paper's LM (177.7 MB
float32 snapshot). It needs root, unshare, nsenter, taskset, ip and tc, and says which is
missing. Everything it creates (namespaces, the veth pair, its qdiscs, processes) is gone when
it exits, also on an error, Ctrl-C or SIGTERM. Writes <output>.json (records, summary, the
command) and <output>.txt (the command and the table).
"""

import json
import os
import shlex
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from experiments.harness import interconnect, netns  # noqa: E402
from experiments.harness.results_paths import repo_relative  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_list("rates", ["0.1", "1", "10", "unshaped"],
                  "Link bandwidths in Gb/s; 'unshaped': no limit.")
flags.DEFINE_integer("repeats", 3, "Counted loops of every variant at every bandwidth.")
flags.DEFINE_integer("sync_steps_per_loop", 25, "Steps of a sync and a 1x loop (a "
                     "codistilled loop is one reload interval).")
flags.DEFINE_integer("plain_loops", 8, "Loops of the 1x runs (the first is not counted).")
flags.DEFINE_integer("exchanges", 5, "Timed snapshot exchanges per bandwidth.")
flags.DEFINE_integer("allreduces", 10, "All-reduces of the gradients alone per block.")
flags.DEFINE_list("parts", list(interconnect.PARTS), "What to measure; records of a subset "
                  "are merged into those already in <output>.json.")
flags.DEFINE_string("arm_flagfile", "configs/experiment_hmm.flags",
                    "Train flags of every arm, relative to the repository.")
flags.DEFINE_multi_string("extra_flag", [], "Train flags added after the flagfile's.")
flags.DEFINE_float("distill_fraction", 0.25, "The codistilled arm's --distill_fraction "
                   "(the headline's); negative: the flagfile's.")
flags.DEFINE_string("work_dir", "/tmp/interconnect_benchmark", "Where the runs go.")
flags.DEFINE_bool("summarize_only", False, "Summarize the records already in <output>.json "
                  "again (e.g. after a crash in the summary), without measuring.")
flags.DEFINE_string("output", os.path.join(REPO, "benchmarks", "results", "interconnect"),
                    "Results path without extension.")


def parse_rates(values) -> list:
    """Gb/s as floats, None for unshaped; a clear error for anything else."""
    rates = []
    for value in values:
        if value in ("unshaped", "0"):
            rates.append(None)
            continue
        try:
            rates.append(float(value))
        except ValueError:
            raise app.UsageError(f"--rates: {value!r} is neither a bandwidth in Gb/s nor "
                                 "'unshaped'.") from None
        if rates[-1] <= 0:
            raise app.UsageError(f"--rates: {value} Gb/s is not a bandwidth; use 'unshaped'.")
    return rates


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(repo_relative(data), f, indent=1)


def _merged_with_earlier(result: dict) -> dict:
    """A run of some --parts keeps the other parts' records of <output>.json (same flags)."""
    if set(FLAGS.parts) == set(interconnect.PARTS) or not os.path.exists(f"{FLAGS.output}.json"):
        return result
    with open(f"{FLAGS.output}.json") as f:
        earlier = json.load(f)
    try:
        return interconnect.merge_with_earlier(earlier, result)
    except ValueError as error:
        raise app.UsageError(f"{FLAGS.output}.json: {error}; pass another --output.") from None


def summarize_and_print(result: dict, start: float) -> None:
    """Adds the summary to <output>.json and writes <output>.txt: the command and the table."""
    result["summary"] = interconnect.summarize(result["records"], result["parameter_bytes"])
    _write_json(f"{FLAGS.output}.json", result)
    table = interconnect.format_table(result["summary"])
    print(table)
    with open(f"{FLAGS.output}.txt", "w") as f:
        f.write(f"# {time.strftime('%Y-%m-%d %H:%M', time.gmtime(start))} UTC, "
                f"{result['seconds'] / 60:.0f} min, load average at the end "
                f"{result['load_average'][0]:.1f} on {os.cpu_count()} CPUs\n"
                + "".join(f"$ {c}\n" for c in result.get("commands", [result["command"]]))
                + f"{table}\n")


def main(argv):
    del argv
    if FLAGS.summarize_only:
        with open(f"{FLAGS.output}.json") as f:
            result = json.load(f)
        start = result.get("start_unix_time",
                           os.path.getmtime(f"{FLAGS.output}.json") - result["seconds"])
        summarize_and_print(result, start)
        return 0
    missing = netns.missing_requirements()
    if missing:
        print("benchmarks/interconnect.py cannot build its link; missing: "
              + "; ".join(missing), file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    train_flags = [f"--flagfile={os.path.join(REPO, FLAGS.arm_flagfile)}", *FLAGS.extra_flag]
    start = time.time()
    result = interconnect.run(
        train_flags, parse_rates(FLAGS.rates), FLAGS.work_dir, repeats=FLAGS.repeats,
        sync_steps_per_loop=FLAGS.sync_steps_per_loop, plain_loops=FLAGS.plain_loops,
        exchanges=FLAGS.exchanges, allreduces=FLAGS.allreduces, parts=FLAGS.parts,
        distill_fraction=None if FLAGS.distill_fraction < 0 else FLAGS.distill_fraction,
        echo=lambda line: print(line, flush=True))
    command = "python " + shlex.join(sys.argv)
    result = {"command": command, "start_unix_time": start, "seconds": time.time() - start,
              "load_average": os.getloadavg(), **result}
    result = _merged_with_earlier(result)
    os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
    _write_json(f"{FLAGS.output}.json", result)  # the raw records first, whatever follows
    summarize_and_print(result, start)
    return 0


if __name__ == "__main__":
    app.run(main)
