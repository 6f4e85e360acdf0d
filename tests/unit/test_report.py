"""Report rendering: markdown and HTML from the same blocks, user text escaped, edits marked."""

from __future__ import annotations

from cda.evaluate.report import Code, Figure, Marked, Report, Section, Table, Text, highlight_edits, write_report


def test_highlight_marks_changed_tokens_and_elides_long_unchanged_runs():
    before, after = highlight_edits(
        "It was a dull film. " + "Nothing else happened in it at all, really, from start to end. " * 3 + "The end was bad.",
        "It was a great film. " + "Nothing else happened in it at all, really, from start to end. " * 3 + "The end was good.",
        context=2,
    )
    assert [t for t, m in before.parts if m] == ["dull", "bad"]
    assert [t for t, m in after.parts if m] == ["great", "good"]
    # Two tokens of context on each side of an edit; the rest is elided.
    assert after.text == "… was a great film. … end was good."


def test_adjacent_changed_tokens_form_one_mark():
    _, after = highlight_edits("It was bad .", "It was really good .")
    assert [t for t, m in after.parts if m] == ["really good"]


def test_markdown_and_html_escape_user_text(tmp_path):
    report = Report("T", sections=[Section("S", [
        Text("a | b * c <br />"),
        Table(["h"], [[Marked([("x|y ", False), ("<b>", True)])], [0.12345], [None]]),
        Figure("f.png", "cap"),
        Code("k: v", "yaml"),
    ])])  # fmt: skip
    md_path, html_path = write_report(report, tmp_path)
    md, html = md_path.read_text(), html_path.read_text()
    assert "a \\| b \\* c \\<br /\\>" in md
    assert "| x\\|y **\\<b\\>** |" in md and "| 0.123 |" in md and "| – |" in md
    assert "```yaml\nk: v\n```" in md and "![cap](f.png)" in md
    assert "a | b * c &lt;br /&gt;" in html and "<mark>&lt;b&gt;</mark>" in html
    assert "<br />" not in html.split("<body>")[1]
