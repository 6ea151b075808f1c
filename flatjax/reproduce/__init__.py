"""Reproduce every theorem of arXiv 2511.03548 on many seeds: verdicts and a report."""

from ._registry import EXPERIMENTS
from ._reproduce import format_experiment, reproduce
from ._verdicts import Check, Experiment

__all__ = ["Check", "EXPERIMENTS", "Experiment", "format_experiment", "reproduce"]
