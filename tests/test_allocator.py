"""The malloc arena cap the train command applies before TensorFlow starts its threads."""

import os
import platform
import subprocess
import sys

import pytest


pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="malloc arenas are glibc's")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _without_cap():
    return {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}


def _count(mode, **env):
    environment = {**_without_cap(), **env, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, os.path.join(REPO, "tests", "helpers",
                                                        "arena_count.py"), mode],
                          env=environment, capture_output=True, text=True, check=True).stdout


def test_the_cap_holds_eight_threads_to_two_arenas_and_passes_on_to_children():
    assert _count("none").endswith(f"arenas={8 + 1}\n")  # glibc's default: one per thread
    assert _count("cap") == "cap=2 env=2 arenas=2\n"


def test_a_users_malloc_arena_max_wins():
    assert _count("cap", MALLOC_ARENA_MAX="3") == "cap=None env=3 arenas=3\n"


WATCH_TENSORFLOW_IMPORT = """
import os, sys
seen = []
class Watch:
    def find_spec(self, name, path, target=None):
        if name == "tensorflow" and not seen:
            seen.append(os.environ.get("MALLOC_ARENA_MAX"))
sys.meta_path.insert(0, Watch())
import tf_codistill.train
print(seen)
"""


def test_the_train_command_caps_the_arenas_before_tensorflow_loads():
    output = subprocess.run([sys.executable, "-c", WATCH_TENSORFLOW_IMPORT], env=_without_cap(),
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert output.strip() == "['2']"
