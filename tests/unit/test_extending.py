"""Extension points: a check, a backend and an edit strategy added by registration only.

Nothing in ``cda/`` is edited for these: each test registers a component the way a user's
package would (the decorator, or an entry point), names it in a config and runs a build.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import sys
import textwrap

import catalogue
import datasets
import pytest

from cda.config import ConfigError, config_from_dict
from cda.edit.strategies import InfillStrategy
from cda.export.card import render_card
from cda.filter.checks import FilterCheck
from cda.pipeline import Components, build
from cda.protocols import Generation, GeneratorCapabilities
from cda.records import Check
from cda.registry import ComponentSettings, backends, checks, edit_strategies
from tests.fakes import FakeClassifier, FakeGenerator

ROWS = {
    "Text": ["A dull film with bad acting.", "A great film, I loved it.", "The plot was boring."],
    "Sentiment": ["Negative", "Positive", "Negative"],
}


def _config(tmp_path, **sections):
    base = {
        "data": {"path": "unused.tsv"},
        "task": {"segments": {"text": "Text"}, "label_column": "Sentiment", "labels": ["Negative", "Positive"]},
        "generate": {"n": 2},
        "filter": {"checks": {"fluency": None}},
        "cache_dir": str(tmp_path / "cache"),
        "export": {"output_dir": str(tmp_path / "out")},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return config_from_dict(base)


class ShortWords(FilterCheck):
    """Toy check: every word of the edited segment is at most ``max_letters`` long."""

    class Settings(ComponentSettings):
        max_letters: int = 12

    cost = 5
    column = "longest_word"
    column_description = "letters in the longest word of the edited segment"
    fails_when = "a word is longer than max_letters"

    def run(self, items):
        longest = [max((len(w) for w in item.edited.split()), default=0) for item in items]
        limit = self.settings.max_letters
        return [Check(name=self.name, passed=n <= limit, reason="" if n <= limit else f"{n} > {limit}", value=n)
                for n in longest]


class Echo:
    """Toy backend: answers every blank with the configured word."""

    class Settings(ComponentSettings):
        word: str = "great"

    capabilities = GeneratorCapabilities(prompts_per_call=8)

    def __init__(self, word: str) -> None:
        self.word, self.name, self.loaded = word, f"echo:{word}", False

    @classmethod
    def from_config(cls, config):
        return cls(config.generate.backend.word)

    def load(self) -> None:
        self.loaded = True

    def generate(self, prompts, sampling):
        assert self.loaded, "the Generate stage loads a generator before its first call"
        blanks = [sorted({m for m in range(1, 10) if f"[BLANK{m}]" in p}) for p in prompts]
        return [Generation(["\n".join(f"[BLANK{b}]: {self.word}" for b in bs)] * sampling.n) for bs in blanks]


@pytest.fixture
def registered():
    checks.register("short_words", func=ShortWords)
    backends.register("echo", func=Echo)
    yield
    checks.unregister("short_words")
    backends.unregister("echo")


def test_a_check_added_by_registration_runs_and_reaches_the_dataset(tmp_path, registered):
    config = _config(tmp_path, filter={"checks": {"fluency": None, "short_words": {"max_letters": 9}}})
    result = build(config, datasets.Dataset.from_dict(ROWS),
                   components=Components(FakeClassifier(), FakeGenerator(["wonderfully", "great"])))  # fmt: skip
    candidates = [c for r in result.records for p in r.plans for c in p.candidates]
    # It runs after words (cost 2) and duplicate (3), before label (10).
    ran = [c for c in candidates if any(k.name == "short_words" for k in c.checks)]
    assert ran and all([k.name for k in c.checks][:5] == ["logic", "minimality", "words", "duplicate", "short_words"]
                       for c in ran)  # fmt: skip
    assert any(c.drop_reason == "short_words" for c in candidates)  # "wonderfully": 11 letters
    counterfactuals = result.dataset.filter(lambda row: row["cda_is_counterfactual"])
    assert len(counterfactuals) > 0 and all(n <= 9 for n in counterfactuals["cda_longest_word"])
    assert "longest_word" in result.audit.column_names
    assert json.loads(counterfactuals[0]["cda_checks"])[4]["name"] == "short_words"
    card = render_card(config, result.summary.as_dict(), result.dataset, result.audit)
    assert "`cda_longest_word`" in card and "a word is longer than max_letters" in card


def test_a_backend_added_by_registration_generates(tmp_path, registered):
    config = _config(tmp_path, generate={"backend": {"name": "echo", "word": "brilliant"}})
    result = build(config, datasets.Dataset.from_dict(ROWS), components=Components(FakeClassifier()))
    counterfactuals = result.dataset.filter(lambda row: row["cda_is_counterfactual"])
    assert len(counterfactuals) > 0 and set(counterfactuals["cda_generator"]) == {"echo:brilliant"}
    assert all("brilliant" in text for text in counterfactuals["Text"])


def test_an_edit_strategy_added_by_registration_plans_and_parses(tmp_path):
    @edit_strategies.register("first_span_only")
    class FirstSpanOnly(InfillStrategy):
        """Infill, but only the first rationale span of each plan is blanked."""

        def plans(self, record):
            from cda.edit.plans import mask_segment

            plans = super().plans(record)
            for plan in plans:
                plan.spans = plan.spans[:1]
                plan.masked = mask_segment(record.segments[plan.segment], plan.spans, self.config.edit.blank)
            return plans

    try:
        config = _config(tmp_path, edit={"strategy": "first_span_only"})
        result = build(config, datasets.Dataset.from_dict(ROWS), components=Components(FakeClassifier(), FakeGenerator()))
        assert FirstSpanOnly.name == "first_span_only"  # not its parent's "infill"
        plans = [p for r in result.records for p in r.plans]
        assert plans and all(len(p.spans) <= 1 and p.masked.count("[BLANK") <= 1 for p in plans)
        assert result.summary.counterfactuals > 0
    finally:
        edit_strategies.unregister("first_span_only")


def test_a_check_from_another_package_registers_through_an_entry_point(tmp_path, monkeypatch):
    (tmp_path / "toy_plugin.py").write_text(textwrap.dedent("""
        from cda.filter.checks import FilterCheck
        from cda.records import Check

        class AlwaysPasses(FilterCheck):
            cost = 4

            def run(self, items):
                return [Check(name=self.name, passed=True) for _ in items]
    """))
    dist = tmp_path / "toy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[cda_checks]\nalways_passes = toy_plugin:AlwaysPasses\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    # catalogue reads the installed entry points once, at import: as if the package had been installed before.
    monkeypatch.setattr(catalogue, "AVAILABLE_ENTRY_POINTS", importlib.metadata.entry_points())
    assert "always_passes" in checks.names()
    config = _config(tmp_path, filter={"checks": {"always_passes": {}}})
    assert "always_passes" in config.filter.checks
    sys.modules.pop("toy_plugin", None)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"filter": {"checks": {"nope": {}}}}, "filter.checks.nope: unknown check 'nope'; registered: claim_copy, constraints, duplicate"),
        ({"filter": {"checks": {"label": {"treshold": 0.6}}}},
         "filter.checks.label.treshold: unknown key for check 'label'; allowed: name, threshold"),
        ({"generate": {"backend": "nope"}}, "generate.backend: unknown generator backend 'nope'; registered: auto, openai"),
        ({"generate": {"backend": {"name": "openai", "max_model_len": 512}}},
         "generate.backend.max_model_len: unknown key for generator backend 'openai'; allowed: name, base_url"),
        ({"generate": {"max_model_len": 512}}, "max_model_len moved to the backend: write generate.backend: {name: <backend>, max_model_len: ...}"),
        ({"generate": {"mode": "rewrite"}}, "mode moved to edit.strategy"),
        ({"edit": {"strategy": {"name": "infill", "x": 1}}}, "edit.strategy.x: unknown key for edit strategy 'infill'"),
    ],
)
def test_unknown_components_and_settings_are_one_clear_error(tmp_path, sections, message):
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, **sections)
    assert message in str(err.value)
