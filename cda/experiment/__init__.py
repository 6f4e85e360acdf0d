"""Experiments on what counterfactuals are worth downstream (``cda experiment ...``)."""

from cda.experiment.config import ExperimentConfig, experiment_config_from_dict, load_experiment_config
from cda.experiment.robustness import ExperimentResult, RunResult, run_robustness

__all__ = [
    "ExperimentConfig", "ExperimentResult", "RunResult", "experiment_config_from_dict", "load_experiment_config",
    "run_robustness",
]
