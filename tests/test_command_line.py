"""The commands' manners, as a user meets them: help by section, one-line usage errors
that exit 2, a quiet start, and the shipped configs from any directory."""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers.runs import REPO
from tf_codistill.runner import command_line

ABSL_INTERNALS = ("--verbosity", "--logtostderr", "--only_check_args", "--run_with_pdb")
SECTIONS = ["run", "trainer", "codistillation", "data", "model of --task=clusters",
            "model of --task=criteo", "model of --task=hmm_lm", "model of --task=imagenet",
            "model of --task=lm"]


def command(module, *args, cwd, env=None):
    """Runs ``python -m module args`` from ``cwd`` as a user would: the package importable
    as installed, and no TF_CPP_MIN_LOG_LEVEL unless the test sets one."""
    environment = {k: v for k, v in os.environ.items() if k != command_line.LOG_LEVEL}
    environment["PYTHONPATH"] = str(REPO)
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)


def train(*args, cwd, env=None):
    return command("tf_codistill.train", *args, cwd=cwd, env=env)


def test_help_lists_the_package_flags_by_section_one_line_each_and_nothing_else(tmp_path):
    result = train("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no TensorFlow start-up lines
    lines = result.stdout.splitlines()
    titles = [line[:-1] for line in lines if re.fullmatch(r"[a-z][^ ].*:|model of .*:", line)]
    assert titles == SECTIONS
    flag_lines = [line for line in lines if line.startswith("  --")]
    assert all(len(line) <= command_line.WIDTH for line in flag_lines)
    listed = {re.match(r"  --(?:\[no\])?(\w+)", line).group(1) for line in flag_lines}
    assert {"train_steps", "distill_weight", "burn_in_steps", "reload_interval", "vocab",
            "units", "image_model", "hash_buckets", "baseline", "prepare_demo_data",
            "model_dir", "closing_summary"} <= listed
    assert not any(line.lstrip().startswith(ABSL_INTERNALS) for line in lines)
    section = lines[lines.index("trainer:") + 1:]
    assert section[0].split(None, 1) == ["--train_steps=1000", "Optimizer steps per group."]
    lm = lines[lines.index("model of --task=lm:") + 1:]
    assert lm[0].split()[0] == "--vocab_size=0"  # the task's own default, not another's


@pytest.mark.slow
def test_helpfull_adds_the_whole_help_and_the_internals(tmp_path):
    result = train("--helpfull", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert all(f"\n{title}:\n" in out for title in SECTIONS)
    assert out.index("\nrun:\n") < out.index("\ntrainer:\n") < out.index("\nabsl.logging:\n")
    assert "--verbosity" in out
    assert "every --lr_decay_boundaries" not in out  # a sentence the one-line help drops
    assert "Sodhani et al. (2021)" in out  # the whole help of --weight_decay_schedule


def _one_error_line(result, message):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "error:" not in result.stdout


@pytest.mark.slow
def test_a_missing_flagfile_names_the_working_directory_and_the_shipped_configs(tmp_path):
    result = train("--flagfile=config/demo.flags", cwd=tmp_path)
    _one_error_line(result, "--flagfile=config/demo.flags: no such file")
    assert f"working directory, {tmp_path})" in result.stderr
    assert "--flagfile=configs/<name>: criteo.flags" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--model_dir=x", "--trian_steps=5"],
     "Unknown command line flag 'trian_steps' (did you mean --train_steps?)"),
    (["--model_dir=x", "--train_steps=ten"], "flag --train_steps=ten: invalid literal"),
    (["--model_dir=x", "--task=speech"], "value should be one of"),
    (["--train_steps=10"], "--model_dir is required"),
    (["--model_dir=x", "--num_groups=0"], "--num_groups=0 is out of range; pass a value >= 1"),
    (["--flagfile=outer.flags", "--model_dir=x"], "error: Unable to open flagfile"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, args, message):
    (tmp_path / "outer.flags").write_text("--flagfile=inner.flags\n")
    result = train(*args, cwd=tmp_path)
    _one_error_line(result, message)
    assert not (tmp_path / "x").exists()  # nothing written


@pytest.mark.slow
def test_evaluate_and_launch_share_the_manners(tmp_path):
    _one_error_line(command("tf_codistill.evaluate", cwd=tmp_path), "--group_dirs is empty")
    _one_error_line(command("tf_codistill.launch", "--emit=helm", cwd=tmp_path),
                    "value should be one of")
    result = command("tf_codistill.evaluate", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "\nevaluate:\n  --group_dirs" in result.stdout


@pytest.mark.slow
def test_a_log_level_the_user_sets_wins(tmp_path):
    result = train("--help", cwd=tmp_path, env={command_line.LOG_LEVEL: "0"})
    assert result.returncode == 0
    assert any(command_line.is_startup_noise(line) for line in result.stderr.splitlines())


def test_startup_noise_is_told_from_what_a_user_must_see():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796410024.608851    5399 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1796410024.609733    5399 cudart_stub.cc:31] Could not find cuda drivers",
        "E0000 00:00:1796410044.026336    5881 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
        "I0000 00:00:1796412376.219043   24361 cpu_feature_guard.cc:227] This TensorFlow binary "
        "is optimized to use available CPU instructions in performance-critical operations.",
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
        "TensorFlow with the appropriate compiler flags.",
    ]
    kept = [
        "E0000 00:00:1796410044.026336    5881 op_kernel.cc:1830] OP_REQUIRES failed: OOM",
        "Traceback (most recent call last):",
        "error: --num_groups=0 is out of range; pass a value >= 1.",
    ]
    assert all(command_line.is_startup_noise(line) for line in noise)
    assert not any(command_line.is_startup_noise(line) for line in kept)


def test_configs_resolve_from_the_working_directory_first_then_the_package(tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = command_line.flagfile_path("configs/demo.flags")
    assert os.path.samefile(shipped, REPO / "configs" / "demo.flags")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.flags").write_text("--train_steps=1\n")
    assert command_line.flagfile_path("configs/demo.flags") == "configs/demo.flags"
    assert command_line.resolve_flagfiles(["--flagfile", "configs/lm.flags", "--x=1"]) == [
        "--flagfile", command_line.shipped_config("configs/lm.flags"), "--x=1"]
    with pytest.raises(command_line.UsageError, match="demo.flag: no such file"):
        command_line.flagfile_path("configs/demo.flag")
    assert set(command_line.shipped_configs()) == {
        p.name for p in (REPO / "configs").glob("*.flags")}
