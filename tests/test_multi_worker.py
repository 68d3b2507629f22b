"""model.fit on a CodistillModel under MultiWorkerMirroredStrategy, two real processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.runs import free_ports

pytestmark = pytest.mark.slow  # starts training processes

REPO = Path(__file__).resolve().parents[1]


def start_worker(index, cluster, out_path, module="tests.helpers.mwms_worker"):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CONFIG=json.dumps(
        {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}))
    return subprocess.Popen([sys.executable, "-m", module, str(out_path)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_local_workers_end_with_identical_weights(tmp_path):
    cluster = [f"localhost:{port}" for port in free_ports(2)]
    outputs = [tmp_path / f"worker{i}.npz" for i in range(2)]
    workers = [start_worker(i, cluster, out) for i, out in enumerate(outputs)]
    for worker in workers:
        log, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, log[-3000:]
    first, second = (np.load(out) for out in outputs)
    assert int(first["replicas"]) == 2
    weights = [k for k in first.files if k.startswith("arr_")]
    assert len(weights) == 8  # two copies of two Dense layers
    for key in weights:
        np.testing.assert_array_equal(first[key], second[key])
    np.testing.assert_allclose(first["loss"], second["loss"], rtol=1e-6)
    assert np.all(np.isfinite(first["loss"]))
