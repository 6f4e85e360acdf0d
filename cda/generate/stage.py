"""The Generate stage: render a prompt per edit plan, sample ``n`` outputs, parse them into candidates."""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from cda.cache import Cache
from cda.config import Config
from cda.edit.strategies import NO_SPANS_ERROR, make_strategy
from cda.generate.demonstrations import retrieve_for, text_id
from cda.generate.prompts import PromptTemplate, load_template, prompt_variables, render_with
from cda.protocols import Generation, Generator, SamplingSettings
from cda.records import Candidate, EditPlan, Record

if TYPE_CHECKING:
    from cda.generate.demonstrations import DemonstrationPool

log = logging.getLogger(__name__)

# Bump when what is cached per prompt changes meaning (keeps old cache entries from being reused).
GENERATE_CACHE_VERSION = 1


def sampling_settings(config: Config) -> SamplingSettings:
    """The sampling settings ``config.generate`` and ``config.seed`` describe.

    Examples:
        >>> from cda.config import config_from_dict
        >>> cfg = config_from_dict({"seed": 3, "data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["a", "b"]}, "generate": {"n": 2}})
        >>> s = sampling_settings(cfg)
        >>> (s.n, s.seed)
        (2, 3)
    """
    gen = config.generate
    return SamplingSettings(
        n=gen.n,
        temperature=gen.temperature,
        top_p=gen.top_p,
        max_new_tokens=gen.max_new_tokens,
        seed=config.seed,
        stop=list(gen.stop),
    )


def round_seed(seed: int, round: int) -> int:
    """The sampling seed of a search round: ``seed`` in the first, another one in each later round.

    Examples:
        >>> round_seed(0, 1), round_seed(0, 2)
        (0, 7919)
    """
    return seed + 7919 * (round - 1)


def prompts_per_call(config: Config, generator: Generator) -> int:
    """How many prompts go to the generator at once: ``generate.prompts_per_call``, else what the
    generator asks for (``capabilities.prompts_per_call``: vLLM batches continuously and wants many), else
    ``generate.batch_size``."""
    if config.generate.prompts_per_call is not None:
        return config.generate.prompts_per_call
    return generator.capabilities.prompts_per_call or config.generate.batch_size


#: The generator name of candidates made from the demonstration pool's replacements.
RETRIEVED = "retrieved:demonstrations"


def substitution_candidates(
    pool: "DemonstrationPool", record: Record, plan: EditPlan, blank: str, sample_index: int
) -> list[Candidate]:
    """The candidate that gives every blank whose words people changed (in the pool, same direction)
    their most common replacement, the other blanks their own words; none when no blank has one.

    Examples:
        >>> from cda.generate.demonstrations import DemonstrationPool, WordOverlapEncoder
        >>> from cda.records import Demonstration, Span
        >>> pool = DemonstrationPool(WordOverlapEncoder())
        >>> _ = pool.add([Demonstration(source_label="Negative", target_label="Positive", old="dull", new="gripping")])
        >>> r = Record(index=0, segments={"text": "A dull, long film."}, label="Negative")
        >>> plan = EditPlan(target_label="Positive", segment="text",
        ...                 spans=[Span(segment="text", start=2, end=6, text="dull"), Span(segment="text", start=8, end=12, text="long")])
        >>> [c.segments["text"] for c in substitution_candidates(pool, r, plan, "[BLANK{i}]", 4)]
        ['A gripping, long film.']
    """
    from cda.edit.plans import fill_blanks

    if not plan.spans:
        return []
    text = record.segments[plan.segment]
    olds = [span.text or text[span.start : span.end] for span in plan.spans]
    own = text_id(text)  # never the human edit of this very text (when the pairs hold its pair)
    found = [pool.replacement(record.label, plan.target_label, old, exclude=own) for old in olds]
    if not any(found):
        return []
    values = [d.new if d is not None else old for d, old in zip(found, olds)]
    raw = "\n".join(f"{blank.format(i=k)}: {v}" for k, v in enumerate(values, start=1))
    segments = {**record.segments, plan.segment: fill_blanks(text, plan.spans, values)}
    return [Candidate(segments=segments, raw=raw, generator=RETRIEVED, sample_index=sample_index)]


class GenerateStage:
    """Asks the generator for ``generate.n`` counterfactuals per edit plan.

    Every prompt's outputs are cached under a key of (generator name, prompt, sampling
    settings with ``n`` and seed, template name and content hash, cache version);
    prompts not in the cache go to the generator in chunks of :func:`prompts_per_call`
    and each chunk is stored as soon as it returns, so a killed run resumes where it
    stopped. Outputs that do not parse become candidates with ``segments=None`` and
    ``error`` set (the raw output kept); a backend failure gives ``n`` candidates with
    the backend's error. Backend failures are not cached, so a rerun retries them. On a
    backend with structured outputs (vLLM), answers are decoded under the edit strategy's
    :meth:`~cda.edit.strategies.EditStrategy.answer_regex` (``generate.structured_answers``),
    and the strategy parses them.

    A plan may be asked in several prompts (the strategy's
    :meth:`~cda.edit.strategies.EditStrategy.parts`: a trained generator's blanks
    ``generator.max_blanks`` at a time, a review a sentence at a time), whose ``k``-th samples,
    joined by the strategy, make its ``k``-th candidate.

    Input columns: ``segments``, ``label``, ``plans`` (from Edit).
    Output columns: ``plan.candidates`` (appended: ``segments``, ``raw``, ``prompt``,
    ``generator``, ``prompt_template``, ``sample_index``, ``error``).

    Args:
        config: the run config (``generate``, ``edit.blank``, ``task``, ``seed``).
        cache: where generations are stored.
        generator: the LLM backend.

    Examples:
        >>> from cda.cache import Cache
        >>> from cda.config import config_from_dict
        >>> from cda.records import Span
        >>> from tests.fakes import FakeGenerator  # doctest: +SKIP
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...     "label_column": "y", "labels": ["Negative", "Positive"]}, "generate": {"n": 2}})
        >>> r = Record(index=0, segments={"text": "A dull film."}, label="Negative", plans=[EditPlan(
        ...     target_label="Positive", segment="text", masked="A [BLANK1] film.",
        ...     spans=[Span(segment="text", start=2, end=6)])])
        >>> stage = GenerateStage(cfg, Cache("/tmp/cda-doctest", enabled=False), FakeGenerator())  # doctest: +SKIP
        >>> [c.segments["text"] for c in stage.process([r])[0].plans[0].candidates]  # doctest: +SKIP
        ['A great film.', 'A wonderful film.']
    """

    name = "generate"

    def __init__(
        self, config: Config, cache: Cache, generator: Generator, demonstrations: "DemonstrationPool | None" = None
    ) -> None:
        self.config = config
        self.cache = cache
        self.generator = generator
        self.demonstrations = demonstrations
        self.template: PromptTemplate | None = None
        self.strategy = make_strategy(config)
        self.generator_calls = 0

    def load(self) -> None:
        """Load the prompt template (the generator loads itself on first use, only if the cache misses)."""
        self.template = load_template(self.config)

    def _template(self) -> PromptTemplate:
        if self.template is None:
            self.load()
        return self.template  # type: ignore[return-value]  # set by load()

    def unload(self) -> None:
        """Nothing to release: the generator is owned by whoever built it (the Runner reuses it for fluency)."""

    def cache_key(self, prompt: str, sampling: SamplingSettings) -> str:
        """The cache key of one prompt's outputs."""
        template = self._template()
        return self.cache.key(
            "generate",
            {
                "generator": self.generator.name,
                "prompt": prompt,
                "sampling": asdict(sampling),
                "template": template.name,
                "template_digest": template.digest,
                "version": GENERATE_CACHE_VERSION,
            },
        )

    def process(self, records: list[Record]) -> list[Record]:
        config, template, strategy = self.config, self._template(), self.strategy
        sampling = sampling_settings(config)
        structured = self.structured_answers()
        samplings: dict[str, SamplingSettings] = {}  # per prompt: the answer regex depends on the blanks

        # 1. A prompt per plan (per part of a plan, for a trained generator); plans without spans fail
        # here without an LLM call when the strategy needs spans.
        work: list[tuple[Record, EditPlan, list[tuple[Record, EditPlan]], list[str]]] = []
        for record in records:
            for plan in record.plans:
                plan.candidates, plan.selected = [], None  # a rerun replaces, never appends
                made = strategy.rule_candidates(record, plan)
                if made is not None:  # an edit by rule (or a plan that cannot be carried out): no prompt
                    plan.candidates.extend(made)
                    continue
                if strategy.needs_spans and not plan.spans:
                    plan.candidates.append(
                        Candidate(
                            generator=self.generator.name,
                            prompt_template=template.name,
                            error=NO_SPANS_ERROR,
                        )
                    )
                    continue
                if self.demonstrations is not None and not plan.demonstrations:
                    plan.demonstrations = retrieve_for(self.demonstrations, record, plan, self._k())
                parts = strategy.parts(record, plan)
                prompts = [render_with(template, prompt_variables(config, *part)) for part in parts]
                for (_, part), prompt in zip(parts, prompts):
                    regex = strategy.answer_regex(part) if structured else None
                    samplings[prompt] = replace(sampling, regex=regex, seed=round_seed(config.seed, plan.round))
                work.append((record, plan, parts, prompts))

        # 2. Outputs per distinct prompt: from the cache, else from the generator. Chunk
        # boundaries are fixed over *all* prompts (not only the missing ones) and a chunk is
        # cached only when it finishes, so a resumed run sends exactly the chunks a clean run
        # would have sent and seeded sampling gives the same outputs.
        outputs: dict[str, Generation] = {}
        keys = {prompt: self.cache_key(prompt, samplings[prompt]) for *_, prompts in work for prompt in prompts}
        for prompt, key in keys.items():
            hit = self.cache.get_json(key)
            if hit is not None:
                outputs[prompt] = Generation(texts=list(hit["texts"]))
        distinct = list(keys)
        missing = [p for p in distinct if p not in outputs]
        if keys:
            log.info("generate: %d prompts, %d cached, %d to generate", len(keys), len(keys) - len(missing), len(missing))
        chunk = prompts_per_call(config, self.generator)
        if missing:
            self.generator.load()  # only now: a run whose outputs are all cached never starts a model
        with tqdm(total=len(missing), desc="Generate", unit="prompt", disable=None) as bar:
            for start in range(0, len(distinct), chunk):
                prompts = [p for p in distinct[start : start + chunk] if p not in outputs]
                if not prompts:
                    continue
                generations = self._call_grouped(prompts, samplings)
                for prompt, generation in zip(prompts, generations):
                    outputs[prompt] = generation
                    if generation.error is None:
                        self.cache.put_json(keys[prompt], {"texts": generation.texts})
                bar.update(len(prompts))

        # 3. Candidates, parse failures included (and the pool's replacements, with demonstrations.substitute).
        demos = config.generate.demonstrations
        for record, plan, parts, prompts in work:
            if self.demonstrations is not None and demos is not None and demos.substitute:
                plan.candidates.extend(substitution_candidates(self.demonstrations, record, plan, config.edit.blank, sampling.n))
            generations = [outputs[prompt] for prompt in prompts]
            base = {"prompt": "\n\n".join(prompts), "generator": self.generator.name, "prompt_template": template.name}
            failed = next((g.error for g in generations if g.error is not None), None)
            if failed is not None:
                plan.candidates.extend(Candidate(**base, sample_index=k, error=failed) for k in range(sampling.n))
                continue
            for k, raws in enumerate(zip(*(g.texts for g in generations))):
                raw, error = strategy.join(list(raws), record, plan, parts)
                segments = None
                if error is None:
                    segments, error = strategy.parse(raw, record, plan)
                plan.candidates.append(Candidate(**base, segments=segments, raw=raw, sample_index=k, error=error))
        return records

    def _k(self) -> int:
        settings = self.config.generate.demonstrations
        return settings.k if settings is not None else 0

    def structured_answers(self) -> bool:
        """Whether answers are decoded under the strategy's regex (``generate.structured_answers`` and a backend that can)."""
        gen = self.config.generate
        return gen.structured_answers and self.generator.capabilities.structured_outputs

    def _call_grouped(self, prompts: list[str], samplings: dict[str, SamplingSettings]) -> list[Generation]:
        """The outputs for a chunk: one generator call per distinct sampling setting (blank count), in order;
        one call for the whole chunk on a generator that takes a regex per prompt."""
        per_prompt = self.generator.capabilities.regex_per_prompt
        groups: dict[str, list[int]] = {}  # prompts one call can take: the same settings (but the regex, per prompt)
        for i, prompt in enumerate(prompts):
            settings = replace(samplings[prompt], regex=None) if per_prompt else samplings[prompt]
            groups.setdefault(repr(settings), []).append(i)
        results: list[Generation] = [Generation([])] * len(prompts)
        for indices in groups.values():
            batch = [prompts[i] for i in indices]
            sampling = samplings[batch[0]]
            if per_prompt and len({samplings[p].regex for p in batch}) > 1:
                sampling = replace(sampling, regex=None, regexes=[samplings[p].regex for p in batch])
            for i, generation in zip(indices, self._call_generator(batch, sampling)):
                results[i] = generation
        return results

    def _call_generator(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        """The generator's outputs for a chunk, checked: one Generation per prompt, ``n`` texts each."""
        self.generator_calls += 1
        generations = self.generator.generate(prompts, sampling)
        if len(generations) != len(prompts):
            error = f"generator {self.generator.name} returned {len(generations)} results for {len(prompts)} prompts"
            return [Generation([], error=error) for _ in prompts]
        checked = []
        for generation in generations:
            if generation.error is None and len(generation.texts) != sampling.n:
                generation = Generation(
                    [],
                    error=f"generator {self.generator.name} returned {len(generation.texts)} samples, "
                    f"expected n={sampling.n}",
                )
            checked.append(generation)
        return checked
