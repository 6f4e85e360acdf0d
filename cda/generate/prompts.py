"""Prompt rendering: Jinja templates from ``prompts/`` (installed as ``cda.prompts``) or a file.

``generate.template`` is a versioned template name (``infill.v1``) or a path to a
``.jinja`` file; unset, it is the edit strategy's (``infill.v1``, ``rewrite.v1``), or with a
``generator`` section the trained generator's (:func:`trained_template`). Templates render with
``StrictUndefined``, so a misspelt variable is an error, not an empty string.

Variables every template gets:

* ``task``: the task name (``sentiment``, ``nli`` ...); ``labels``: all label names
* ``source_label`` / ``target_label``: the record's label and the label to reach
* ``segments``: list of ``{name, text, edited}`` in task order; ``segment``: the edited
  segment's name; ``original``: its text; ``masked``: its text with numbered blanks;
  ``window``: ``masked`` cut to ``generator.context_words`` words around each blank (the
  whole of ``masked`` without a trained generator)
* ``blanks``: the blank markers (``["[BLANK1]", ...]``)
* ``spans``: list of ``{blank, text, start, end, score}`` in text order
* ``substitutions``: the plan's entity swaps (``entity_swap``), list of ``{old, new, type, forms}``
  (``forms``: the new entity's surface forms, any of which counts as mentioning it); the
  ``segments`` then show the texts *after* the swaps (the edited evidence)
* ``demonstrations``: verified edits retrieved for the plan (``generate.demonstrations``, ``plan.demonstrations``), list
  of ``{old, new, context}`` best first (``context``: the words around the edit, the old words
  blanked as ``[BLANK1]``); empty when demonstrations are off

Examples:
    >>> from cda.config import config_from_dict
    >>> from cda.records import EditPlan, Record, Span
    >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"name": "sentiment",
    ...     "segments": {"text": "Text"}, "label_column": "y", "labels": ["Negative", "Positive"]}})
    >>> r = Record(index=0, segments={"text": "A dull film."}, label="Negative")
    >>> plan = EditPlan(target_label="Positive", segment="text", masked="A [BLANK1] film.",
    ...                 spans=[Span(segment="text", start=2, end=6, text="dull")])
    >>> "Text: A [BLANK1] film." in render_prompt(cfg, r, plan)
    True
    >>> template_name(cfg)
    'infill.v1'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cda.config import Config
from cda.edit.entities import apply_substitutions
from cda.edit.plans import masked_window
from cda.errors import CdaError
from cda.records import EditPlan, Record, Span
from cda.tasks import editable_segments, target_labels

TEMPLATE_VARIABLES = (
    "task", "labels", "source_label", "target_label", "segments", "segment",
    "original", "masked", "window", "blanks", "spans", "substitutions", "demonstrations",
)  # fmt: skip
_SUFFIX = ".jinja"
# The formats a generator trained by ``cda train-generator`` learns: blanks only, and blanks that show
# the words they replace (from human pairs; self-supervised answers are those words).
TRAINED_TEMPLATE = "trained_infill.v1"
TRAINED_EDIT_TEMPLATE = "trained_infill.v2"
# The format of a generator trained to rewrite the whole segment (``edit.strategy: rewrite``).
TRAINED_REWRITE_TEMPLATE = "trained_rewrite.v1"


class TemplateError(CdaError, ValueError):
    """A prompt template is missing or does not render; the message names it and what is allowed."""


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded template: ``name`` for provenance, ``source`` text, ``digest`` of the text."""

    name: str
    source: str
    origin: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()[:16]


def available_templates() -> list[str]:
    """Names of the templates shipped in ``cda.prompts``.

    Examples:
        >>> "infill.v1" in available_templates()
        True
    """
    return sorted(p.name.removesuffix(_SUFFIX) for p in files("cda.prompts").iterdir() if p.name.endswith(_SUFFIX))


def _is_path(spec: str) -> bool:
    """A file path (has a folder part, or names an existing file), not a shipped template name."""
    return "/" in spec or "\\" in spec or (spec.endswith(_SUFFIX) and Path(spec).expanduser().is_file())


def template_name(config: Config) -> str:
    """The template's name for provenance: ``infill.v1``, or the file path as configured.

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["a", "b"]}, "edit": {"strategy": "rewrite"}})
        >>> template_name(cfg)
        'rewrite.v1'
    """
    spec = config.generate.template
    if spec is None:
        if config.generator is not None:
            return trained_template(config)
        from cda.edit.strategies import make_strategy

        return make_strategy(config).template
    return spec.removesuffix(_SUFFIX) if not _is_path(spec) else spec


def trained_template(config: Config) -> str:
    """The default template of a ``generator`` section: the one its adapter at ``generator.path``
    was trained with (its ``cda_generator.json``), else ``trained_rewrite.v1`` with ``edit.strategy:
    rewrite`` (a segment or a sentence at a time), else ``trained_infill.v2`` for an adapter trained from human pairs only, else
    ``trained_infill.v1``.

    Examples:
        >>> from cda.config import config_from_dict
        >>> task = {"segments": {"text": "Text"}, "label_column": "y", "labels": ["a", "b"]}
        >>> pairs = {"path": "p.tsv", "key": "id"}
        >>> [trained_template(config_from_dict({"data": {"path": "x.tsv"}, "task": task, "generator": {"train": train}}))
        ...  for train in ({"pairs": pairs}, {"pairs": pairs, "self_supervised": True})]
        ['trained_infill.v2', 'trained_infill.v1']
    """
    from cda.generate.trained.train import REWRITES, adapter_meta, answer_format

    generator = config.generator
    assert generator is not None
    if generator.path is not None:
        return adapter_meta(Path(generator.path).expanduser()).get("template") or TRAINED_TEMPLATE
    if answer_format(config) in REWRITES:
        return TRAINED_REWRITE_TEMPLATE
    train = generator.train
    return TRAINED_EDIT_TEMPLATE if train is not None and not train.self_supervised else TRAINED_TEMPLATE


def load_template(config: Config) -> PromptTemplate:
    """The configured template's text.

    Raises:
        TemplateError: no shipped template has that name, or the file does not exist.
    """
    spec = config.generate.template
    name = template_name(config)
    if spec is not None and _is_path(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise TemplateError(
                f"generate.template file not found: {spec}. Use a .jinja file path or one of the shipped "
                f"templates: {available_templates()}"
            )
        return PromptTemplate(name=name, source=path.read_text(encoding="utf-8"), origin=str(path))
    resource = files("cda.prompts").joinpath(name + _SUFFIX)
    if not resource.is_file():
        raise TemplateError(
            f"Unknown prompt template {name!r}. Shipped templates: {available_templates()}; "
            "or set generate.template to the path of a .jinja file"
        )
    return PromptTemplate(name=name, source=resource.read_text(encoding="utf-8"), origin=f"cda.prompts/{name}{_SUFFIX}")


@lru_cache(maxsize=16)
def _compile(source: str, name: str) -> jinja2.Template:
    # Templates are shared like configs: they render in Jinja's immutable sandbox, which refuses
    # attribute access to internals (``''.__class__.__mro__``) and any call that mutates data.
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(
            f"Prompt template {name!r} has a syntax error at line {e.lineno}: {e.message}. "
            f"Allowed variables: {', '.join(TEMPLATE_VARIABLES)}"
        ) from None


def prompt_variables(config: Config, record: Record, plan: EditPlan) -> dict[str, Any]:
    """The variables a template is rendered with (see the module docstring)."""
    blanks = [config.edit.blank.format(i=k) for k in range(1, len(plan.spans) + 1)]
    original = record.segments[plan.segment]
    shown = apply_substitutions(record.segments, plan.substitutions) if plan.substitutions else record.segments
    context = config.generator.context_words if config.generator is not None else None
    return {
        "task": config.task.name,
        "labels": list(config.task.labels),
        "source_label": record.label,
        "target_label": plan.target_label,
        "segments": [{"name": n, "text": t, "edited": n == plan.segment} for n, t in shown.items()],
        "segment": plan.segment,
        "original": original,
        "masked": plan.masked,
        "window": masked_window(original, plan.spans, config.edit.blank, context)
        if plan.spans and context is not None
        else plan.masked,
        "blanks": blanks,
        "spans": [
            {
                "blank": blank,
                "text": span.text or original[span.start : span.end],
                "start": span.start,
                "end": span.end,
                "score": span.score,
            }
            for blank, span in zip(blanks, plan.spans)
        ],
        "substitutions": [
            {"old": sub.old, "new": sub.new, "type": sub.type, "forms": sorted(set(sub.forms.values()), key=len, reverse=True)}
            for sub in plan.substitutions
        ],
        "demonstrations": [{"old": d.old, "new": d.new, "context": d.context} for d in plan.demonstrations],
    }


def render_with(template: PromptTemplate, variables: dict[str, Any]) -> str:
    """Render a loaded template; errors name the template, the problem and the allowed variables."""
    compiled = _compile(template.source, template.name)
    try:
        return compiled.render(**variables).strip()
    except jinja2.UndefinedError as e:
        raise TemplateError(
            f"Prompt template {template.name!r} ({template.origin}) uses an undefined variable: {e.message}. "
            f"Allowed variables: {', '.join(TEMPLATE_VARIABLES)}"
        ) from None
    except SecurityError as e:
        raise TemplateError(
            f"Prompt template {template.name!r} ({template.origin}) tried something templates may not do: {str(e).rstrip('.')}. "
            f"Templates may only read the variables {', '.join(TEMPLATE_VARIABLES)}"
        ) from None
    except jinja2.TemplateError as e:
        raise TemplateError(f"Prompt template {template.name!r} ({template.origin}) failed to render: {e}") from None


def render_prompt(config: Config, record: Record, plan: EditPlan) -> str:
    """The user-message text asking the generator to carry out ``plan`` on ``record`` (the texts of
    a plan asked in parts, :meth:`~cda.edit.strategies.EditStrategy.parts`, separated by a blank line,
    as a candidate's ``prompt`` keeps them).

    Raises:
        TemplateError: the template is missing, has a syntax error or uses an unknown variable.
    """
    from cda.edit.strategies import make_strategy

    template = load_template(config)
    return "\n\n".join(render_with(template, prompt_variables(config, *part)) for part in make_strategy(config).parts(record, plan))


def check_template(config: Config, records: list[Record]) -> None:
    """Render the configured template once, before any model is loaded.

    Uses a dummy plan built from the first record (its first word as the one span), or
    from a made-up record when ``records`` is empty.

    Raises:
        TemplateError: the template is missing, has a syntax error or uses an unknown variable.

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["a", "b"]}, "generate": {"template": "nope.v9"}})
        >>> check_template(cfg, [])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cda.generate.prompts.TemplateError: Unknown prompt template 'nope.v9'. Shipped templates: ['claim.v1', 'infill.v1', ...
    """
    template = load_template(config)
    task = config.task
    if records:
        record = records[0]
    else:
        segments = {name: "An example sentence." for name in task.segments}
        record = Record(index=0, segments=segments, label=task.labels[0])
    render_with(template, prompt_variables(config, record, _first_word_plan(config, record)))
    used = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(template.source))
    unknown = sorted(used - set(TEMPLATE_VARIABLES))
    if unknown:  # a variable used only in a branch the dummy plan did not take
        raise TemplateError(
            f"Prompt template {template.name!r} ({template.origin}) uses unknown variable(s) {unknown}. "
            f"Allowed variables: {', '.join(TEMPLATE_VARIABLES)}"
        )


def _first_word_plan(config: Config, record: Record) -> EditPlan:
    """A plan that blanks the first word of the record's first editable segment."""
    segment = editable_segments(config.task)[0]
    text = record.segments[segment]
    first = text.split()[0] if text.split() else text
    start = text.find(first)
    span = Span(segment=segment, start=start, end=start + len(first), text=first)
    targets = target_labels(config.task, record.label) or [label for label in config.task.labels if label != record.label]
    masked = text[:start] + config.edit.blank.format(i=1) + text[start + len(first) :]
    return EditPlan(target_label=targets[0], segment=segment, spans=[span], masked=masked)


def shows_replaced_words(config: Config) -> bool:
    """Whether the configured template shows the words a blank replaces: ``trained_infill.v2``
    does, and so do the zero-shot templates (they show the original); ``trained_infill.v1`` does not.

    Raises:
        TemplateError: as :func:`check_template`.

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["a", "b"]}, "generate": {"template": "trained_infill.v2"}})
        >>> shows_replaced_words(cfg), shows_replaced_words(cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"template": "trained_infill.v1"})}))
        (True, False)
    """
    probe = "Qzxjv"  # a word no context around the blank contains
    edited = editable_segments(config.task)[0]
    segments = {name: f"{probe} and more words." if name == edited else "Other words." for name in config.task.segments}
    record = Record(index=0, segments=segments, label=config.task.labels[0])
    return probe in render_with(load_template(config), prompt_variables(config, record, _first_word_plan(config, record)))
