"""Prompt templates: shipped ones render every variable, bad templates give clear errors."""

from __future__ import annotations

import pytest

from cda.config import config_from_dict
from cda.edit.plans import make_plans
from cda.generate.prompts import (
    TEMPLATE_VARIABLES,
    TemplateError,
    available_templates,
    check_template,
    load_template,
    render_prompt,
    template_name,
)
from cda.records import Record, Span


def make_config(mode: str = "infill", **generate):
    return config_from_dict(
        {
            "edit": {"strategy": mode},
            "data": {"path": "x.tsv"},
            "task": {
                "name": "nli",
                "segments": {"premise": "sentence1", "hypothesis": "sentence2"},
                "label_column": "gold_label",
                "labels": ["entailment", "neutral", "contradiction"],
            },
            "generate": generate,
        }
    )


PREMISE, HYP = "A man plays a guitar on stage.", "A man is playing music loudly."
RECORD = Record(
    index=0,
    segments={"premise": PREMISE, "hypothesis": HYP},
    label="entailment",
    spans=[Span(segment="hypothesis", start=HYP.index("music"), end=HYP.index("music") + 5)],
)


def plan_for(config, record=RECORD, target="contradiction"):
    return next(p for p in make_plans(record, config.task, config.edit) if p.target_label == target)


def test_shipped_templates_are_versioned_and_installed():
    assert {"infill.v1", "rewrite.v1"} <= set(available_templates())
    assert template_name(make_config()) == "infill.v1"
    assert template_name(make_config(mode="rewrite")) == "rewrite.v1"
    assert template_name(make_config(template="rewrite.v1.jinja")) == "rewrite.v1"


def test_infill_prompt_has_context_masked_segment_and_old_words():
    cfg = make_config()
    prompt = render_prompt(cfg, RECORD, plan_for(cfg))
    assert f"Premise: {PREMISE}" in prompt
    assert "Hypothesis: A man is playing [BLANK1] loudly." in prompt
    assert "[BLANK1] = music" in prompt
    assert '"contradiction" instead of "entailment"' in prompt
    assert prompt.rstrip().endswith("Answer:")
    assert HYP not in prompt  # the infill prompt shows the hypothesis only masked


def test_rewrite_prompt_has_the_original_segment():
    cfg = make_config(mode="rewrite")
    prompt = render_prompt(cfg, RECORD, plan_for(cfg))
    assert f"Hypothesis: {HYP}" in prompt
    assert "Words to change: music" in prompt
    assert prompt.rstrip().endswith("Edited hypothesis:")
    no_spans = RECORD.model_copy(update={"spans": []})
    assert "Words to change" not in render_prompt(cfg, no_spans, plan_for(cfg, no_spans))


def test_template_from_file_gets_all_variables(tmp_path):
    body = "\n".join(f"{v}={{{{ {v} }}}}" for v in TEMPLATE_VARIABLES)
    path = tmp_path / "mine.v2.jinja"
    path.write_text(body, encoding="utf-8")
    cfg = make_config(template=str(path))
    assert template_name(cfg) == str(path)
    prompt = render_prompt(cfg, RECORD, plan_for(cfg))
    assert "task=nli" in prompt and "source_label=entailment" in prompt and "target_label=contradiction" in prompt
    assert "masked=A man is playing [BLANK1] loudly." in prompt and "blanks=['[BLANK1]']" in prompt
    assert "segment=hypothesis" in prompt and f"original={HYP}" in prompt


def test_template_content_changes_the_digest(tmp_path):
    path = tmp_path / "t.jinja"
    path.write_text("{{ masked }}", encoding="utf-8")
    first = load_template(make_config(template=str(path))).digest
    path.write_text("Fill: {{ masked }}", encoding="utf-8")
    assert load_template(make_config(template=str(path))).digest != first


def test_undefined_variable_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.jinja"
    path.write_text("Make it {{ target }}: {{ masked }}", encoding="utf-8")
    cfg = make_config(template=str(path))
    with pytest.raises(TemplateError) as err:
        render_prompt(cfg, RECORD, plan_for(cfg))
    message = str(err.value)
    assert "'target' is undefined" in message and str(path) in message and "target_label" in message


def test_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.jinja"
    path.write_text("ok\n{% for s in spans %}{{ s.text }}", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"syntax error at line \d+"):
        check_template(make_config(template=str(path)), [RECORD])


def test_unknown_template_name_lists_the_shipped_ones():
    with pytest.raises(TemplateError, match=r"Unknown prompt template 'infill.v9'.*infill.v1"):
        check_template(make_config(template="infill.v9"), [RECORD])
    with pytest.raises(TemplateError, match="file not found"):
        check_template(make_config(template="nowhere/x.jinja"), [RECORD])


def test_check_template_before_explain_and_without_records():
    # Before Explain there are no spans: the check makes a dummy plan with one blank.
    bare = RECORD.model_copy(update={"spans": []})
    check_template(make_config(), [bare])
    check_template(make_config(mode="rewrite"), [])


def test_check_template_catches_unknown_variable_in_untaken_branch(tmp_path):
    path = tmp_path / "branch.jinja"
    path.write_text("{{ masked }}{% if not spans %}{{ sorce_label }}{% endif %}", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"unknown variable\(s\) \['sorce_label'\]"):
        check_template(make_config(template=str(path)), [RECORD])


ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ masked.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.system('echo pwned') }}",
    "{{ spans.append(1) }}{{ masked }}",
    "{% for s in segments %}{{ s.update({'text': 'x'}) }}{% endfor %}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_templates_render_in_a_sandbox(tmp_path, source):
    """Known ways out of Jinja (dunder attributes, globals, mutating the variables) fail with a clear error."""
    path = tmp_path / "escape.jinja"
    path.write_text(source, encoding="utf-8")
    cfg = make_config(template=str(path))
    with pytest.raises(TemplateError) as err:
        check_template(cfg, [RECORD])
    assert str(path) in str(err.value) or "escape" in str(err.value)
