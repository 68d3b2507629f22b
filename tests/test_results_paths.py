"""Results JSONs name the repository's files relative to it, whatever checkout wrote them."""

from experiments.harness import results_paths


def test_paths_inside_the_repository_are_written_relative_to_it():
    result = {
        "curves": "/checkout/experiments/results/time_to_target.json",
        "train_flags": ["--flagfile=/checkout/configs/experiment_lm.flags", "--seed=3"],
        "/checkout/runs/x/group_0": {"loss": 1.5, "steps": [1, 2]},
        "root": "/scratch/runs/x",  # outside: as the command was given it
        "elsewhere": "/checkout-old/configs/a.flags",  # a sibling directory is not inside
        "relative": "runs/x/baseline",
        "command": "python experiments/lm_churn.py --root=/checkout/runs/x",  # as typed
        "seeds": (0, 1), "ratio": None,
    }
    assert results_paths.repo_relative(result, repo="/checkout") == {
        "curves": "experiments/results/time_to_target.json",
        "train_flags": ["--flagfile=configs/experiment_lm.flags", "--seed=3"],
        "runs/x/group_0": {"loss": 1.5, "steps": [1, 2]},
        "root": "/scratch/runs/x",
        "elsewhere": "/checkout-old/configs/a.flags",
        "relative": "runs/x/baseline",
        "command": "python experiments/lm_churn.py --root=/checkout/runs/x",
        "seeds": [0, 1], "ratio": None,
    }


def test_the_default_repository_is_this_checkout():
    here = results_paths.REPO
    assert results_paths.repo_relative(f"{here}/benchmarks/results/interconnect.json") == \
        "benchmarks/results/interconnect.json"
