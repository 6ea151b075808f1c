"""What a result was computed with: versions and devices (a leaf module).

Every report and JSON that flatjax writes records ``environment()``, so a number can
always be traced to the software and hardware that produced it.
"""

from __future__ import annotations

import importlib.metadata
import platform


def package_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"unknown"``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def environment() -> dict[str, object]:
    """Versions of flatjax and its core dependencies, and the devices JAX sees.

    Returns:
        A JSON-serializable dict: ``flatjax``, ``jax``, ``jaxlib``, ``optax``,
        ``equinox``, ``numpy`` and ``python`` versions; ``platform`` (``"cpu"``,
        ``"gpu"``, ...), ``device_kind``, ``device_count`` (global),
        ``local_device_count``, ``process_count`` and ``x64`` (JAX's 64-bit mode).
    """
    import jax

    device = jax.devices()[0]
    versions = {
        name: package_version(name)
        for name in ("flatjax", "jax", "jaxlib", "optax", "equinox", "numpy")
    }
    return {
        **versions,
        "python": platform.python_version(),
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(),
        "x64": bool(jax.config.read("jax_enable_x64")),
    }
