"""The filter check protocol: what a check declares and how the Filter stage calls it.

A check is a class registered in :data:`cda.registry.checks`. It declares its ``name``,
its ``Settings`` (the config section ``filter.checks.<name>``), a ``cost`` (cheaper checks
run first), what it ``needs`` (``"classifier"``, ``"language_model"``) and, when its
value belongs in the dataset, a ``column`` (``cda_<column>`` on counterfactual rows, and
``<column>`` in the audit). Checks that need no model see every parsed candidate; a
check that needs a model sees only the candidates that passed every check before it.

Examples:
    A toy check, usable in a config as ``filter.checks.no_shouting: {}``:

    >>> from cda.filter.checks import CheckItem, FilterCheck
    >>> from cda.records import Check
    >>> from cda.registry import ComponentSettings, checks
    >>> @checks.register("no_shouting")
    ... class NoShouting(FilterCheck):
    ...     class Settings(ComponentSettings):
    ...         max_capitals: float = 0.5
    ...     cost = 5
    ...     def run(self, items):
    ...         share = [sum(ch.isupper() for ch in i.edited) / max(1, len(i.edited)) for i in items]
    ...         return [Check(name=self.name, passed=s <= self.settings.max_capitals, value=s) for s in share]
    >>> checks.unregister("no_shouting")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

from cda.records import Candidate, Check, EditPlan, Record
from cda.registry import ComponentSettings

if TYPE_CHECKING:
    from cda.cache import Cache
    from cda.config import Config
    from cda.protocols import Classifier, LanguageModel

#: What a check may need besides the candidates.
NEEDS = ("classifier", "language_model")


@dataclass
class CheckItem:
    """One parsed candidate of a plan of a record: what a check looks at."""

    record: Record
    plan: EditPlan
    candidate: Candidate

    @property
    def original(self) -> str:
        """The edited segment(s) as in the original (several joined by line breaks)."""
        return self.plan.text_of(self.record.segments)

    @property
    def given(self) -> str:
        """The edited segment(s) as the generator was given them: the original with the plan's
        rule-made entity swaps applied (the original itself for a plan without any)."""
        if not self.plan.substitutions:
            return self.original
        from cda.edit.entities import apply_substitutions

        return self.plan.text_of(apply_substitutions(self.record.segments, self.plan.substitutions))

    @property
    def edited(self) -> str:
        """The edited segment(s) in the candidate (``""`` for a missing one)."""
        return self.plan.text_of(self.candidate.segments)


@dataclass
class CheckContext:
    """What the Filter stage hands every check: the run config and the shared models.

    ``train_records`` (the task classifier's default training data, as the runner passes it to
    the classifier) and ``cache`` are for a check that trains a model of its own (``label``'s
    ``second_opinion``); ``None`` when the stage was built without them.
    """

    config: "Config"
    classifier: "Classifier | None" = None
    language_model: "LanguageModel | None" = None
    train_records: "list[Record] | None" = None
    cache: "Cache | None" = None


class FilterCheck:
    """Base class of filter checks (subclass it, set the class attributes, implement :meth:`run`).

    Args:
        settings: this check's validated section of ``filter.checks``.
        context: the run config and the models the stage shares.
    """

    name: ClassVar[str] = ""
    Settings: ClassVar[type[ComponentSettings]] = ComponentSettings
    #: Lower runs first: 0-9 string checks, 10-19 classifier, 20+ language model.
    cost: ClassVar[int] = 0
    #: Models the check uses, from :data:`NEEDS`; a check needing a model sees only survivors.
    needs: ClassVar[frozenset[str]] = frozenset()
    #: Export column for the check's value (``cda_<column>``), or ``None`` to keep it in ``checks`` only.
    column: ClassVar[str | None] = None
    #: What the column holds, for the dataset card.
    column_description: ClassVar[str] = ""
    #: Why a candidate fails, for the dataset card (the settings that decide it, in parentheses).
    fails_when: ClassVar[str] = ""

    def __init__(self, settings: ComponentSettings, context: CheckContext) -> None:
        self.settings = settings
        self.context = context

    @classmethod
    def create(cls, config: "Config", classifier: "Classifier | None" = None,
               language_model: "LanguageModel | None" = None, **settings: object) -> "FilterCheck":
        """This check with the config's settings for it (or the defaults), updated by ``settings``.

        Examples:
            >>> from cda.config import config_from_dict
            >>> from cda.filter.minimality import MinimalityCheck
            >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
            ...     "label_column": "y", "labels": ["a", "b"]}})
            >>> MinimalityCheck.create(cfg, max_edit_distance=0.2).settings.max_edit_distance
            0.2
        """
        current = config.filter.checks.get(cls.name) or cls.Settings(name=cls.name)
        merged = cls.Settings.model_validate({**current.model_dump(), **settings})
        return cls(merged, CheckContext(config, classifier, language_model))

    def skip_reason(self) -> str | None:
        """Why this check cannot run in this context (it is then left out), or ``None``."""
        if "classifier" in self.needs and self.context.classifier is None:
            return "no classifier"
        if "language_model" in self.needs and self.context.language_model is None:
            return "no language model"
        return None

    def load(self) -> None:
        """Validate the context before any candidate is checked (e.g. the classifier's labels)."""

    def run(self, items: Sequence[CheckItem]) -> list[Check]:
        """One :class:`~cda.records.Check` per item, in order, named :attr:`name`."""
        raise NotImplementedError
