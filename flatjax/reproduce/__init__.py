"""Reproduce every theorem of arXiv 2511.03548 on many seeds: verdicts and a report."""

from ._registry import EXPERIMENTS
from ._reproduce import (
    EXIT_INSUFFICIENT_SEEDS,
    exit_status,
    format_experiment,
    reproduce,
    summary,
)
from ._verdicts import KINDS, Check, Experiment, Settings

__all__ = [
    "Check",
    "EXIT_INSUFFICIENT_SEEDS",
    "EXPERIMENTS",
    "Experiment",
    "KINDS",
    "Settings",
    "exit_status",
    "format_experiment",
    "reproduce",
    "summary",
]
