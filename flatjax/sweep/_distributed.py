"""Several processes (and hosts) on JAX's own distributed runtime.

A distributed sweep is one ``jax.distributed`` job: every process runs the same
``run_sweep`` call, the chunk programs are sharded over one mesh of all processes'
devices, and process 0 alone reads and writes the output folder. What process 0
decides (which chunks are finished, an error that stops the sweep, the final table)
reaches the others through ``broadcast_one_to_all``, so no process ever waits in a
collective that another has left.
"""

from __future__ import annotations

import json

import jax
import numpy as np

from .._checks import check_int


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: list[int] | None = None,
    heartbeat_timeout_seconds: int = 100,
    shutdown_timeout_seconds: int = 300,
) -> dict[str, int]:
    """Join (or start) a multi-process JAX job, with gloo collectives on CPU.

    A thin layer over ``jax.distributed.initialize``: arguments left as None come
    from JAX's environment variables (``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``, ``JAX_LOCAL_DEVICE_IDS``) or from
    its cluster auto-detection (SLURM, Open MPI, Kubernetes, Cloud TPU, ...). On a
    CPU backend the cross-process collectives are gloo's (set before the backend
    starts, unless ``jax_cpu_collectives_implementation`` is set already); GPUs use
    NCCL. Calling it again in a process that already joined a job does nothing.

    Call it before the first JAX operation, in every process, then call
    ``run_sweep`` with the same arguments in every process.

    Args:
        coordinator_address: ``"host:port"`` of process 0's coordinator.
        num_processes: the number of processes of the job.
        process_id: this process's index in ``[0, num_processes)``.
        local_device_ids: the local devices this process uses (default: all).
        heartbeat_timeout_seconds: after this long without a heartbeat, a process
            is declared dead and the others stop (JAX's default 100).
        shutdown_timeout_seconds: how long a process waits for the others at exit
            (JAX's default 300).

    Returns:
        ``{"process_index", "process_count", "device_count",
        "local_device_count"}`` of the joined job.

    Raises:
        ValueError: a bad argument, or one that neither the arguments, the
            environment nor a cluster manager define.
        RuntimeError: JAX's backends started before this call.
    """
    call = "initialize_distributed"
    if coordinator_address is not None and (
        not isinstance(coordinator_address, str)
        or coordinator_address.rpartition(":")[0] == ""
        or not coordinator_address.rpartition(":")[2].isdigit()
    ):
        raise ValueError(
            f"`{call}(coordinator_address=...)` must be 'host:port', got "
            f"{coordinator_address!r}"
        )
    if num_processes is not None:
        check_int(call, "num_processes", num_processes, 1)
    if process_id is not None:
        check_int(call, "process_id", process_id, 0)
        if num_processes is not None and process_id >= num_processes:
            raise ValueError(
                f"`{call}(process_id=...)` must be < num_processes={num_processes}, "
                f"got {process_id}"
            )
    check_int(call, "heartbeat_timeout_seconds", heartbeat_timeout_seconds, 1)
    check_int(call, "shutdown_timeout_seconds", shutdown_timeout_seconds, 1)
    if not jax.distributed.is_initialized():
        from jax._src import xla_bridge

        if not xla_bridge.backends_are_initialized():
            current = jax.config.jax_cpu_collectives_implementation  # pyright: ignore
            if current in (None, "none"):
                jax.config.update("jax_cpu_collectives_implementation", "gloo")
        try:
            jax.distributed.initialize(
                coordinator_address,
                num_processes,
                process_id,
                local_device_ids=local_device_ids,
                heartbeat_timeout_seconds=heartbeat_timeout_seconds,
                shutdown_timeout_seconds=shutdown_timeout_seconds,
            )
        except ValueError as err:
            raise ValueError(
                f"`{call}`: {err} (pass coordinator_address, num_processes and "
                "process_id, or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
                "JAX_PROCESS_ID, or run under a cluster manager JAX detects)"
            ) from None
    return {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
    }


def broadcast_json(value):
    """Process 0's JSON-able ``value``, on every process (itself when alone)."""
    if jax.process_count() == 1:
        return value
    payload = np.frombuffer(json.dumps(value).encode(), np.uint8)
    payload = broadcast_bytes(payload if jax.process_index() == 0 else None)
    return json.loads(payload.tobytes().decode())


def broadcast_bytes(payload: np.ndarray | None, source: int = 0) -> np.ndarray:
    """Process ``source``'s uint8 array on every process (the others pass None)."""
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        assert payload is not None
        return payload
    is_source = jax.process_index() == source
    size = np.array([payload.size if payload is not None else 0], np.int64)
    size = int(multihost_utils.broadcast_one_to_all(size, is_source)[0])
    buffer = payload if is_source else np.zeros(size, np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(buffer, is_source))


def raise_if_any(message: str | None) -> None:
    """Raise one process's error on every process, so that none waits for the others.

    Each process passes the error it found locally (a full disk, a locked folder,
    too little memory) or None; if any passed one, every process raises the first
    one's ``ValueError``, naming the process when there are several.

    Raises:
        ValueError: when any process passed a message.
    """
    if jax.process_count() == 1:
        if message is not None:
            raise ValueError(message)
        return
    from jax.experimental import multihost_utils

    flags = multihost_utils.process_allgather(np.array([message is not None]))
    failed = np.flatnonzero(np.asarray(flags).reshape(-1))
    if failed.size == 0:
        return
    source = int(failed[0])
    payload = None
    if message is not None:  # this process is the source
        payload = np.frombuffer(message.encode(), np.uint8)
    text = broadcast_bytes(payload, source).tobytes().decode()
    raise ValueError(f"process {source}: {text}")


def agree_min(value: int) -> int:
    """The smallest of every process's ``value`` (e.g. a memory budget)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    values = multihost_utils.process_allgather(np.array([value], np.int64))
    return int(np.min(values))
