"""``cda evaluate``: validity, minimality, fluency, diversity and closeness to human
counterfactuals of a ``cda build`` output, with a report (``metrics.json``,
``report.md``, ``report.html``, figures).

Examples:
    >>> from cda.evaluate import evaluate
    >>> result = evaluate("outputs/imdb", reference="../shared/data/kaushik-cad/sentiment/dev_paired.tsv")  # doctest: +SKIP
"""

from cda.evaluate.build_output import BuildOutput, Counterfactual, load_build_output
from cda.evaluate.evaluation import EvalComponents, EvaluationResult, evaluate
from cda.evaluate.judges import JudgeError
from cda.evaluate.reference import ReferencePairingError
from cda.training import NotCdaDatasetError

__all__ = [
    "BuildOutput", "Counterfactual", "EvalComponents", "EvaluationResult", "JudgeError", "NotCdaDatasetError",
    "ReferencePairingError", "evaluate", "load_build_output",
]
