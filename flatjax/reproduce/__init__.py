"""Reproduce every theorem of arXiv 2511.03548 on many seeds: verdicts and a report."""

from ._experiments import EXPERIMENTS, Check, Experiment
from ._reproduce import format_experiment, reproduce

__all__ = ["Check", "EXPERIMENTS", "Experiment", "format_experiment", "reproduce"]
