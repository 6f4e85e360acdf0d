"""Generate stage plumbing with fakes: candidates, caching, resumable chunks, failures kept as data."""

from __future__ import annotations

import sys

import pytest

from cda.cache import Cache
from cda.config import GeneratorConfig, config_from_dict
from cda.edit.plans import mask_segment
from cda.edit.stage import EditStage
from cda.generate import backends
from cda.generate.backends import BackendError, make_generator, make_language_model, resolve_backend
from cda.generate.parsing import infill_answer_regex
from cda.generate.stage import NO_SPANS_ERROR, GenerateStage, prompts_per_call, sampling_settings
from cda.protocols import Generation, Generator, GeneratorCapabilities, LanguageModel, SamplingSettings
from cda.records import EditPlan, Record, Span
from tests.fakes import FakeGenerator


def make_config(tmp_path, mode: str = "infill", **generate):
    return config_from_dict(
        {
            "edit": {"strategy": mode},
            "seed": 7,
            "cache_dir": str(tmp_path / "cache"),
            "data": {"path": "x.tsv"},
            "task": {"name": "sentiment", "segments": {"text": "Text"}, "label_column": "y", "labels": ["Negative", "Positive"]},
            "generate": {"n": 2, **generate},
        }
    )


def records_with_plans(config, with_spans=True):
    texts = ["A dull film with bad acting.", "A great, fun story."]
    words = [["dull", "bad"], ["great"]]
    records = []
    for i, (text, ws) in enumerate(zip(texts, words)):
        spans = [Span(segment="text", start=text.index(w), end=text.index(w) + len(w)) for w in ws] if with_spans else []
        records.append(Record(index=i, segments={"text": text}, label=["Negative", "Positive"][i], spans=spans))
    return EditStage(config).process(records)


def run(config, generator, records, cache=None):
    stage = GenerateStage(config, cache or Cache(config.resolved_cache_dir()), generator)
    assert stage.name == "generate"
    stage.load()
    try:
        return stage.process(records), stage
    finally:
        stage.unload()


class JunkGenerator:
    """Returns output no parser can use, except for the second sample."""

    name = "fake:junk"
    capabilities = GeneratorCapabilities()

    def load(self) -> None:
        pass

    def generate(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        return [Generation(["I love movies!", "[BLANK1]: fine\n[BLANK2]: okay"][: sampling.n]) for _ in prompts]


class FailingGenerator:
    """A backend whose calls fail (e.g. a server that is down)."""

    name = "fake:down"
    capabilities = GeneratorCapabilities()

    def load(self) -> None:
        pass

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        self.calls += 1
        return [Generation([], error="connection refused") for _ in prompts]


class DyingGenerator(FakeGenerator):
    """Works for ``alive`` calls, then the process 'dies' (as a killed run would)."""

    def __init__(self, alive: int) -> None:
        super().__init__()
        self.alive = alive

    def generate(self, prompts, sampling):
        if self.alive == 0:
            raise KeyboardInterrupt
        self.alive -= 1
        return super().generate(prompts, sampling)


def test_fakes_satisfy_protocols():
    assert isinstance(FakeGenerator(), Generator)


def test_candidates_from_fake_generator(tmp_path):
    cfg = make_config(tmp_path)
    records, _ = run(cfg, FakeGenerator(["great", "awful"]), records_with_plans(cfg))
    plan = records[0].plans[0]
    assert plan.target_label == "Positive"
    assert [c.segments for c in plan.candidates] == [
        {"text": "A great film with great acting."},
        {"text": "A awful film with awful acting."},
    ]
    cand = plan.candidates[0]
    assert cand.error is None and cand.raw.startswith("[BLANK1]: great")
    assert (cand.generator, cand.prompt_template, cand.sample_index) == ("fake:generator", "infill.v1", 0)
    assert "A [BLANK1] film with [BLANK2] acting." in cand.prompt
    assert [c.sample_index for c in plan.candidates] == [0, 1]
    assert len(records[1].plans[0].candidates) == 2


class PartFailingGenerator(FakeGenerator):
    """Like FakeGenerator, but answers nothing for a prompt whose window holds "acting"."""

    def generate(self, prompts, sampling):
        out = super().generate(prompts, sampling)
        return [Generation([""] * sampling.n) if "acting" in p else g for p, g in zip(prompts, out)]


def four_blank_record():
    text = "A dull, slow and long film with bad acting."
    spans = [Span(segment="text", start=text.index(w), end=text.index(w) + len(w), text=w) for w in ("dull", "slow", "long", "bad")]
    plan = EditPlan(target_label="Positive", segment="text", spans=spans, masked=mask_segment(text, spans))
    return Record(index=0, segments={"text": text}, label="Negative", plans=[plan])


def test_trained_generator_is_asked_at_most_max_blanks_per_prompt(tmp_path):
    """A plan with more blanks than the adapter saw in training is asked in parts of
    generator.max_blanks blanks (text order); the parts' k-th samples make the k-th candidate."""
    cfg = make_config(tmp_path, template="trained_infill.v1")
    cfg.generator = GeneratorConfig(path=str(tmp_path / "adapter"), max_blanks=3, context_words=2)
    fake = FakeGenerator(["great", "fun"])
    records, _ = run(cfg, fake, [four_blank_record()])

    assert [p.count("[BLANK") for p in fake.prompts] == [3, 1]
    assert "Positive): A [BLANK1], [BLANK2] and [BLANK3] film with" in fake.prompts[0]
    assert fake.prompts[1].endswith("film with [BLANK1] acting.")  # the first part's words as they were
    first, second = records[0].plans[0].candidates
    assert first.segments == {"text": "A great, great and great film with great acting."}
    assert second.segments == {"text": "A fun, fun and fun film with fun acting."}
    assert first.raw == "[BLANK1]: great\n[BLANK2]: great\n[BLANK3]: great\n[BLANK4]: great"
    assert first.prompt == "\n\n".join(fake.prompts)

    failing, _ = run(cfg, PartFailingGenerator(), [four_blank_record()], Cache(tmp_path / "other", enabled=False))
    assert {c.error for c in failing[0].plans[0].candidates} == {"part 2 of 2: empty output"}
    assert all(c.segments is None and c.raw.startswith("[BLANK1]: ") for c in failing[0].plans[0].candidates)


def test_plans_within_max_blanks_and_zero_shot_generators_are_asked_whole(tmp_path):
    zero_shot = FakeGenerator()
    records, _ = run(make_config(tmp_path), zero_shot, [four_blank_record()])
    assert len(zero_shot.prompts) == 1 and "A [BLANK1], [BLANK2] and [BLANK3] film with [BLANK4] acting." in zero_shot.prompts[0]
    assert records[0].plans[0].candidates[0].segments == {"text": "A great, great and great film with great acting."}

    cfg = make_config(tmp_path, template="trained_infill.v1")
    cfg.generator = GeneratorConfig(path=str(tmp_path / "adapter"), max_blanks=2)
    trained = FakeGenerator()
    run(cfg, trained, records_with_plans(cfg), Cache(tmp_path / "other", enabled=False))
    assert [p.count("[BLANK") for p in trained.prompts] == [2, 1]


def test_second_run_is_served_from_the_cache(tmp_path):
    cfg = make_config(tmp_path)
    first = FakeGenerator()
    out1, _ = run(cfg, first, records_with_plans(cfg))
    assert len(first.prompts) == 2
    second = FakeGenerator(["other", "words"])  # would answer differently if it were asked
    out2, stage = run(cfg, second, records_with_plans(cfg))
    assert second.prompts == [] and stage.generator_calls == 0
    assert [c.segments for r in out2 for p in r.plans for c in p.candidates] == [
        c.segments for r in out1 for p in r.plans for c in p.candidates
    ]


@pytest.mark.parametrize("change", [{"seed": 8}, {"generate": {"n": 3}}, {"generate": {"temperature": 0.1}}])
def test_cache_key_covers_seed_and_sampling(tmp_path, change):
    cfg = make_config(tmp_path)
    run(cfg, FakeGenerator(), records_with_plans(cfg))
    data = cfg.model_dump()
    for section, value in change.items():
        data[section] = {**data[section], **value} if isinstance(value, dict) else value
    changed = config_from_dict(data)
    fake = FakeGenerator()
    run(changed, fake, records_with_plans(changed))
    assert len(fake.prompts) == 2


def test_cache_key_covers_template_content(tmp_path):
    template = tmp_path / "t.jinja"
    template.write_text("Fill {{ blanks | join(' ') }} in: {{ masked }}", encoding="utf-8")
    cfg = make_config(tmp_path, template=str(template))
    run(cfg, FakeGenerator(), records_with_plans(cfg))
    template.write_text("Please fill {{ blanks | join(' ') }} in: {{ masked }}", encoding="utf-8")
    fake = FakeGenerator()
    records, _ = run(cfg, fake, records_with_plans(cfg))
    assert len(fake.prompts) == 2
    assert records[0].plans[0].candidates[0].prompt_template == str(template)


def test_killed_run_keeps_finished_chunks(tmp_path):
    cfg = make_config(tmp_path, batch_size=1)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, DyingGenerator(alive=1), records_with_plans(cfg))
    resumed = FakeGenerator()
    records, stage = run(cfg, resumed, records_with_plans(cfg))
    assert len(resumed.prompts) == 1 and stage.generator_calls == 1
    assert all(len(p.candidates) == 2 for r in records for p in r.plans)


class StructuredGenerator(FakeGenerator):
    """A fake backend with structured outputs: records the sampling of each call."""

    capabilities = GeneratorCapabilities(structured_outputs=True)

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, str | None]] = []

    def generate(self, prompts, sampling):
        self.calls.append((len(prompts), sampling.regex))
        return super().generate(prompts, sampling)


def test_structured_backends_get_an_answer_regex_per_blank_count(tmp_path):
    cfg = make_config(tmp_path)
    gen = StructuredGenerator()
    records, stage = run(cfg, gen, records_with_plans(cfg))
    # Two blanks and one blank: two calls in one chunk, each under its own regex.
    assert sorted(gen.calls) == [(1, infill_answer_regex(1)), (1, infill_answer_regex(2))]
    assert records[0].plans[0].candidates[0].segments == {"text": "A great film with great acting."}
    # The regex is part of the cache key, so turning it off regenerates.
    plain = StructuredGenerator()
    run(config_from_dict({**cfg.model_dump(), "generate": {**cfg.generate.model_dump(), "structured_answers": False}}),
        plain, records_with_plans(cfg))  # fmt: skip
    assert plain.calls == [(2, None)]


def test_unstructured_backends_and_rewrite_get_no_regex(tmp_path):
    cfg = make_config(tmp_path)
    gen = FakeGenerator()
    assert GenerateStage(cfg, Cache(tmp_path / "c"), gen).structured_answers() is False
    rewrite = make_config(tmp_path, mode="rewrite")
    gen = StructuredGenerator()
    run(rewrite, gen, records_with_plans(rewrite))
    assert gen.calls and all(regex is None for _, regex in gen.calls)  # the rewrite strategy has no answer shape


def test_chunk_size_from_config_then_generator_then_batch_size(tmp_path):
    class Wide(FakeGenerator):
        capabilities = GeneratorCapabilities(prompts_per_call=256)

    assert prompts_per_call(make_config(tmp_path, batch_size=3), FakeGenerator()) == 3
    assert prompts_per_call(make_config(tmp_path, batch_size=3), Wide()) == 256
    assert prompts_per_call(make_config(tmp_path, batch_size=3, prompts_per_call=5), Wide()) == 5


def test_parse_failures_are_kept_with_raw_output(tmp_path):
    cfg = make_config(tmp_path)
    records, _ = run(cfg, JunkGenerator(), records_with_plans(cfg))
    bad, good = records[0].plans[0].candidates
    assert bad.segments is None and bad.raw == "I love movies!" and "no replacement found" in bad.error
    assert bad.drop_reason == "parse" and bad.prompt
    assert good.error is None and good.segments == {"text": "A fine film with okay acting."}
    # The second record has one blank; its "[BLANK2]" line is ignored.
    assert records[1].plans[0].candidates[1].segments == {"text": "A fine, fun story."}


def test_backend_errors_become_n_candidates_and_are_retried(tmp_path):
    cfg = make_config(tmp_path)
    failing = FailingGenerator()
    records, _ = run(cfg, failing, records_with_plans(cfg))
    cands = records[0].plans[0].candidates
    assert len(cands) == 2 and all(c.error == "connection refused" and c.segments is None for c in cands)
    assert {c.drop_reason for c in cands} == {"generation"}
    run(cfg, failing, records_with_plans(cfg))
    assert failing.calls == 2  # errors were not cached


def test_wrong_sample_count_is_an_error(tmp_path):
    class Short(FakeGenerator):
        def generate(self, prompts, sampling):
            return [Generation(g.texts[:1]) for g in super().generate(prompts, sampling)]

    cfg = make_config(tmp_path)
    records, _ = run(cfg, Short(), records_with_plans(cfg))
    assert all("expected n=2" in c.error for c in records[0].plans[0].candidates)


def test_infill_without_spans_needs_no_llm_call(tmp_path):
    cfg = make_config(tmp_path)
    fake = FakeGenerator()
    records, _ = run(cfg, fake, records_with_plans(cfg, with_spans=False))
    assert fake.prompts == []
    for record in records:
        (cand,) = record.plans[0].candidates
        assert cand.error == NO_SPANS_ERROR and cand.segments is None and cand.generator == "fake:generator"
        assert cand.drop_reason == "no_edit"  # not a generator failure: no prompt was sent


def test_rewrite_mode_works_without_spans(tmp_path):
    class Rewriter:
        name = "fake:rewriter"
        capabilities = GeneratorCapabilities()

        def load(self) -> None:
            pass

        def generate(self, prompts, sampling):
            return [Generation([f"Here is the edited text:\n\"A fine film. ({k})\"" for k in range(sampling.n)]) for _ in prompts]

    cfg = make_config(tmp_path, mode="rewrite")
    records, _ = run(cfg, Rewriter(), records_with_plans(cfg, with_spans=False))
    cands = records[0].plans[0].candidates
    assert [c.segments for c in cands] == [{"text": "A fine film. (0)"}, {"text": "A fine film. (1)"}]
    assert cands[0].prompt_template == "rewrite.v1"


def test_identical_prompts_are_generated_once(tmp_path):
    cfg = make_config(tmp_path)
    records = records_with_plans(cfg)
    twin = records[0].model_copy(deep=True, update={"index": 5})
    fake = FakeGenerator()
    out, _ = run(cfg, fake, [*records, twin], cache=Cache(tmp_path / "off", enabled=False))
    assert len(fake.prompts) == 2
    assert len(out[2].plans[0].candidates) == 2


def test_sampling_settings_from_config(tmp_path):
    cfg = make_config(tmp_path, temperature=0.5, top_p=0.9, max_new_tokens=12, stop=["\n\n"])
    assert sampling_settings(cfg) == SamplingSettings(n=2, temperature=0.5, top_p=0.9, max_new_tokens=12, seed=7, stop=["\n\n"])


# ---------------------------------------------------------------- backends


def test_backend_resolution(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    assert resolve_backend(make_config(tmp_path)) == "transformers"
    assert resolve_backend(make_config(tmp_path, backend="vllm")) == "vllm"


def test_transformers_backend_is_built_lazily(tmp_path):
    cfg = make_config(tmp_path, backend="transformers", batch_size=3)
    gen = make_generator(cfg)
    assert gen.name == "transformers:SmolLM2-135M-Instruct.Q4_1"
    assert gen._model is None and gen.batch_size == 3  # nothing loaded until the first call
    assert isinstance(gen, Generator) and isinstance(gen, LanguageModel)
    assert gen.cache_root == tmp_path / "cache" / "models"
    assert make_language_model(cfg).name == gen.name


def test_named_backend_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cda.generate.vllm_engine", None)  # as if not written/installed
    with pytest.raises(BackendError, match=r"generate.backend 'vllm' is not available.*pip install"):
        make_generator(make_config(tmp_path, backend="vllm"))


def test_auto_falls_back_to_transformers(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "resolve_backend", lambda config: "vllm")
    monkeypatch.setitem(sys.modules, "cda.generate.vllm_engine", None)
    assert make_generator(make_config(tmp_path, backend="auto")).name.startswith("transformers:")


def test_openai_language_model_falls_back_to_local_smollm2(tmp_path, monkeypatch):
    cfg = make_config(tmp_path, backend="openai", model="served-model-name")
    assert make_language_model(cfg).name == "transformers:SmolLM2-135M-Instruct.Q4_1"
