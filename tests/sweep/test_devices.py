"""``use_cpu_cores``: one XLA host device per core, unless the user said otherwise."""

import os
import subprocess
import sys

import jax
import pytest

from flatjax.sweep import use_cpu_cores


def test_a_fresh_process_gets_one_cpu_device_per_core():
    code = (
        "import os; from flatjax.sweep import use_cpu_cores; use_cpu_cores(); "
        "import jax; print(jax.local_device_count(), os.cpu_count())"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    command = [sys.executable, "-c", code]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    devices, cores = out.stdout.split()
    assert int(devices) == int(cores)


def test_the_users_setting_wins(monkeypatch):
    flags = "--xla_force_host_platform_device_count=3"
    monkeypatch.setenv("XLA_FLAGS", flags)
    assert use_cpu_cores() == flags
    assert os.environ["XLA_FLAGS"] == flags


def test_too_late_is_an_error_not_a_silent_no_op(monkeypatch):
    jax.numpy.zeros(1).block_until_ready()  # the backend of this process is up
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with pytest.raises(RuntimeError, match="before JAX's first operation"):
        use_cpu_cores()
    assert "XLA_FLAGS" not in os.environ
