"""Run optax transforms on problems with ``lax.scan``: metrics and suffix averages."""

from ._runner import RunResult, default_suffix_starts, run

__all__ = ["RunResult", "default_suffix_starts", "run"]
