"""The Label Studio page for reviewing a counterfactual, and the tasks that fill it.

The page shows the original and its label, the counterfactual and its target label, a
word-level diff (deleted words struck through in red, inserted ones in green), what the
filter said (every check, the drop reason), then **accept / reject** (reject reasons appear
only on reject) and a text box pre-filled with the candidate: editing it and accepting makes
a correction.

Examples:
    >>> config = label_config()
    >>> config.startswith("<View>") and 'name="decision"' in config and 'whenChoiceValue="reject"' in config
    True
    >>> 'value="$context"' in label_config(context=True)
    True
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

from cda.review.candidates import ReviewCandidate, describe_checks, diff_html

#: Control names in the labeling config (what the export's results are keyed by).
DECISION, REASONS, CORRECTION = "decision", "reject_reason", "correction"
ACCEPT, REJECT = "accept", "reject"
#: Why a reviewer may reject a candidate (several may apply).
REJECT_REASONS = ("label not flipped", "not minimal", "not fluent", "other")
#: The predictions that pre-fill the correction box carry this model version.
MODEL_VERSION = "cda"

INSTRUCTIONS = (
    "<p>Each task is one counterfactual that cda generated: an edit of the original meant to change its label "
    "to the target label with as few changes as possible.</p>"
    "<ul><li><b>accept</b> when the edit reads naturally, changes the label and changes little;</li>"
    "<li><b>accept</b> after <b>editing the text box</b> when it is nearly right: your text replaces the generated one;</li>"
    "<li><b>reject</b> otherwise, and tick why.</li></ul>"
    "<p>The filter's checks are shown for information: you may overrule them.</p>"
)

_STYLE = """
    .cda-diff { line-height: 1.6; }
    .cda-diff del { background: #ffd7d5; color: #82071e; text-decoration: line-through; padding: 0 2px; }
    .cda-diff ins { background: #ccffd8; color: #055d20; text-decoration: none; font-weight: 600; padding: 0 2px; }
    .cda-filter { color: #555; font-size: 0.9em; }
"""


def label_config(context: bool = False) -> str:
    """The labeling config (Label Studio's XML) for counterfactual review.

    Args:
        context: show the segments the edit leaves alone (e.g. the premise when the
            hypothesis is edited).
    """
    context_block = (
        '  <Header value="Context (unchanged)" size="5"/>\n  <Text name="context" value="$context"/>\n' if context else ""
    )
    reasons = "\n".join(f"      <Choice value={quoteattr(r)}/>" for r in REJECT_REASONS)
    return f"""<View>
  <Style>{_STYLE}  </Style>
{context_block}  <Header value="Original — $source_label" size="5"/>
  <Text name="original" value="$original"/>
  <Header value="Counterfactual — target: $target_label" size="5"/>
  <Text name="counterfactual" value="$counterfactual"/>
  <Header value="Word diff (deleted / inserted)" size="5"/>
  <View className="cda-diff">
    <HyperText name="diff" value="$diff_html" inline="true"/>
  </View>
  <View className="cda-filter">
    <Header value="Filter: $filter" size="6"/>
    <Text name="checks" value="$checks"/>
  </View>
  <Header value="Your decision" size="5"/>
  <Choices name="{DECISION}" toName="counterfactual" choice="single-radio" required="true" showInline="true">
    <Choice value="{ACCEPT}"/>
    <Choice value="{REJECT}"/>
  </Choices>
  <View visibleWhen="choice-selected" whenTagName="{DECISION}" whenChoiceValue="{REJECT}">
    <Header value="Why reject?" size="6"/>
    <Choices name="{REASONS}" toName="counterfactual" choice="multiple" showInline="true">
{reasons}
    </Choices>
  </View>
  <Header value="Correction: edit the text to fix a nearly-right counterfactual, then accept" size="6"/>
  <TextArea name="{CORRECTION}" toName="counterfactual" editable="true" maxSubmissions="1" rows="6"/>
</View>
"""


def to_task(candidate: ReviewCandidate, build: str = "") -> dict[str, Any]:
    """The Label Studio task of a candidate, with a prediction that pre-fills the correction box.

    Examples:
        >>> from cda.review.candidates import ReviewCandidate
        >>> c = ReviewCandidate("0-Positive-text-s0-x", 0, 0, "Negative", "Positive", "text", 0,
        ...                     {"text": "A dull film."}, "A fine film.", drop_reason="label")
        >>> task = to_task(c)
        >>> task["data"]["diff_html"], task["data"]["filter"]
        ('A <del>dull</del><ins>fine</ins> film.', 'dropped: label')
        >>> task["predictions"][0]["result"][0]["value"]
        {'text': ['A fine film.']}
    """
    text = candidate.text or ""
    data = {
        "candidate_id": candidate.candidate_id,
        "original": candidate.original,
        "source_label": candidate.source_label,
        "counterfactual": text,
        "target_label": candidate.target_label,
        "diff_html": diff_html(candidate.original, text),
        "filter": candidate.fate,
        "checks": describe_checks(candidate.checks),
        "context": "\n".join(f"{name}: {value}" for name, value in candidate.context.items()),
        "original_index": candidate.original_index,
        "edited_segment": candidate.edited_segment,
        "sample_index": candidate.sample_index,
        "build": build,
    }
    prefill = {"from_name": CORRECTION, "to_name": "counterfactual", "type": "textarea", "value": {"text": [text]}}
    return {"data": data, "predictions": [{"model_version": MODEL_VERSION, "result": [prefill]}]}
