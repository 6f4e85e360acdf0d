"""cda: counterfactually augmented datasets.

Explain → Edit → Generate → Filter → Export, as a CLI (``cda build``), a Python API
and the Hugging Face datasets it writes.

Examples:
    >>> from cda import augment, load_config  # doctest: +SKIP
    >>> augmented = augment(dataset, load_config("configs/imdb.yaml"))  # doctest: +SKIP
"""

from cda.config import Config, ConfigError, config_from_dict, load_config
from cda.data import DataError, load_table
from cda.pipeline import BuildResult, Components, augment, build
from cda.records import Candidate, Check, EditPlan, Record, Span

__all__ = [
    "BuildResult", "Candidate", "Check", "Components", "Config", "ConfigError", "config_from_dict", "DataError", "EditPlan",
    "Record", "Span", "augment", "build", "load_config", "load_table",
]
__version__ = "0.1.0"
