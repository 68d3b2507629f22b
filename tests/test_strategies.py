"""The strategy helper: names, TF_CONFIG checks and a clear TPU error."""

import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from tf_codistill.runner import strategies


def test_default_and_mirrored(mirrored_strategy):
    assert strategies.get_strategy("default") is tf.distribute.get_strategy()
    assert isinstance(mirrored_strategy, tf.distribute.MirroredStrategy)


def test_unknown_strategy_names_the_choices():
    with pytest.raises(ValueError, match=r"strategy='horovod' is not known; choose one of"):
        strategies.get_strategy("horovod")


def test_invalid_tf_config_is_explained(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        strategies.get_strategy("multi_worker")


def test_tpu_without_an_address_says_what_to_pass(monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(strategies.TPUUnavailableError, match="--tpu="):
        strategies.get_strategy("tpu")


def test_tpu_at_an_address_nobody_listens_on_fails_fast():
    from tests.test_multi_worker import free_ports
    address = f"grpc://127.0.0.1:{free_ports(1)[0]}"
    with pytest.raises(strategies.TPUUnavailableError, match="No TPU reachable"):
        strategies.get_strategy("tpu", address)


def test_local_tpu_on_a_machine_without_one_is_a_clear_error():
    """In its own process: trying a TPU system touches the eager context."""
    code = ("from tf_codistill.runner import strategies\n"
            "try:\n"
            "    strategies.get_strategy('tpu', 'local')\n"
            "except strategies.TPUUnavailableError as error:\n"
            "    print('CLEAR:', error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert "CLEAR: No TPU reachable at tpu='local'" in result.stdout, result.stderr[-2000:]
