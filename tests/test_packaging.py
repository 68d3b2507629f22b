"""The wheel: the shipped flagfiles install with the package and resolve from any directory."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.helpers.runs import REPO

_NOT_SOURCE = shutil.ignore_patterns(".git", "runs", "build", "dist", "*.egg-info",
                                     "__pycache__", ".pytest_cache", ".hypothesis", "results")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the source tree (the build leaves nothing in the repo)."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=_NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(root / "wheels"), str(source)],
                   check=True, capture_output=True, timeout=300)
    return next((root / "wheels").glob("tf_codistill-*.whl"))


@pytest.mark.slow
def test_the_wheel_carries_every_shipped_flagfile(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name.rsplit("/", 1)[1]: archive.read(name) for name in archive.namelist()
                   if name.startswith("tf_codistill/configs/")}
    expected = {p.name: p.read_bytes() for p in (REPO / "configs").iterdir()}
    assert shipped == expected


@pytest.mark.slow
def test_an_installed_package_finds_configs_from_any_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = ("from tf_codistill.runner import command_line as c\n"
             "print(c.flagfile_path('configs/demo.flags'))\n"
             "try:\n    c.flagfile_path('demo.flags')\n"
             "except c.UsageError as e:\n    print(e)\n")
    result = subprocess.run([str(python), "-c", probe], cwd=elsewhere, capture_output=True,
                            text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    resolved, refusal = result.stdout.splitlines()
    assert resolved.startswith(str(venv)) and resolved.endswith("tf_codistill/configs/demo.flags")
    with open(resolved, "rb") as installed:
        assert installed.read() == (REPO / "configs" / "demo.flags").read_bytes()
    assert "demo.flags: no such file" in refusal and str(elsewhere) in refusal
