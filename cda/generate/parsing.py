"""Robust parsing of raw LLM output into edited segments.

Small models rarely follow the answer format exactly. The infill parser accepts
``[BLANK1]: x``, ``BLANK1: x``, ``Blank 1 = x``, ``1. x``, markdown bullets and bold,
quotes, several blanks on one line, a JSON object, chat-template leftovers and trailing
chatter; a blank it cannot find makes the whole output a failure (never filled by guessing). The
rewrite parser strips preambles ("Here is the rewritten text:"), labels, code fences,
quotes and trailing notes.

Every parser returns ``(result, None)`` or ``(None, error)``: failures are data, and the
Generate stage keeps them as candidates with the raw output.

Examples:
    >>> parse_infill("Sure!\\n[BLANK1]: **awful**\\n[BLANK2]: 'rude'.", 2)
    (['awful', 'rude'], None)
    >>> parse_infill("[BLANK1]: awful", 2)
    (None, 'missing replacement for [BLANK2] (found [BLANK1])')
    >>> parse_rewrite('Here is the rewritten text:\\n"A lively film."')
    ('A lively film.', None)
"""

from __future__ import annotations

import json
import re


# Special tokens of common chat templates (ChatML, Llama, Gemma, Mistral) left in decoded text.
_SPECIAL = re.compile(
    r"<\|[^|>]{1,40}\|>|</?s>|<(?:start|end)_of_turn>|\[/?INST\]|<<\/?SYS>>|<\|?endoftext\|?>", re.IGNORECASE
)
_ROLE_LINE = re.compile(r"^\s*(?:assistant|user|system|model)\s*:?\s*$", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```[\w-]*\s*$")
_QUOTES = [('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("`", "`"), ("\u00ab", "\u00bb")]
_BULLET = re.compile(r"^\s*(?:[-*+\u2022>]+\s+)+")
_NUMBERED = re.compile(r"^\s*(?:[-*+\u2022]\s*)?\(?(\d{1,2})\s*[.):\]]\s*(.*)$")
_ARROW = re.compile(r"\s*(?:->|=>|\u2192|-->)\s*")
_LEADING_NUMBER = re.compile(r"^\s*\d{1,2}[.)]\s+")
# A parenthetical or dash comment after the replacement: "awful (opposite of great)".
_TRAILING_NOTE = re.compile(r"\s+(?:\(.*|--?\s.*|\u2014.*)$")
_PREAMBLE = re.compile(
    r"^\s*(?:\*\*)?(?:(?:sure|certainly|okay|ok|of course|absolutely)\b[!,.]?\s*)?"
    r"(?:(?:here(?:'s| is| are)|below is)[^\n:]{0,80}:"
    r"|(?:the\s+)?(?:edited|rewritten|revised|modified|updated|new|final)\s+"
    r"(?:text|version|sentence|review|hypothesis|premise|claim|segment|passage|evidence|statement)\s*:"
    r"|(?:output|answer|result)\s*:"
    r"|(?:sure|certainly|okay|ok|of course|absolutely)\b[!,.]*(?=\s|$))(?:\*\*)?\s*",
    re.IGNORECASE,
)
_TRAILING_SECTION = re.compile(
    r"^\s*(?:\*\*)?\(?(?:note|explanation|changes?|changed|i (?:changed|replaced|made)|this (?:version|edit))\b",
    re.IGNORECASE,
)
_ANSWER_PREFIX = re.compile(
    r"^\s*(?:\*\*)?(?:answer|output|new words|replacements?|result)(?:\*\*)?\s*:\s*", re.IGNORECASE
)
# "Word: value" / "[X1]: value" on the single fallback line: keep the value.
_LABEL = re.compile(r"^\s*[^:\n]{1,30}:\s+(?=\S)")
# The single-line fallback for one blank only accepts a short phrase, not a sentence of chatter.
_MAX_FALLBACK_WORDS = 3
# Characters of context on each side of a blank used to find it in an echoed sentence.
_CONTEXT = 24


def clean_output(raw: str) -> str:
    """Remove chat-template tokens, role lines and code fences; normalise line ends.

    Examples:
        >>> clean_output("<|im_start|>assistant\\n```\\n[BLANK1]: good\\n```<|im_end|>")
        '[BLANK1]: good'
    """
    text = _SPECIAL.sub("\n", raw.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [line for line in text.split("\n") if not _FENCE.match(line) and not _ROLE_LINE.match(line)]
    return "\n".join(lines).strip()


def strip_quotes(text: str) -> str:
    """Strip whitespace, markdown emphasis and matching quotes around ``text`` (repeatedly).

    Examples:
        >>> strip_quotes(' **"awful"** ')
        'awful'
    """
    prev = None
    while prev != text:
        prev = text
        text = text.strip()
        for mark in ("**", "__", "*", "_"):
            if len(text) > 2 * len(mark) and text.startswith(mark) and text.endswith(mark):
                text = text[len(mark) : -len(mark)]
        for left, right in _QUOTES:
            if len(text) >= 2 and text.startswith(left) and text.endswith(right):
                text = text[1:-1]
    return text


def _blank_pattern(blank: str) -> re.Pattern[str]:
    """A lenient regex for the blank markers, capturing the number.

    ``[BLANK{i}]`` matches ``[BLANK1]``, ``BLANK1``, ``Blank 1``, ``[BLANK_1]``, ``**[BLANK1]**``.
    """
    prefix, suffix = blank.split("{i}")
    core_prefix = prefix.strip("[](){}<> *")
    core_suffix = suffix.strip("[](){}<> *")
    body = re.escape(core_prefix) + r"\s*[_#-]?\s*(\d{1,3})" + (r"\s*" + re.escape(core_suffix) if core_suffix else "")
    return re.compile(r"[*_`]*[\[\(\{<]?\s*" + body + r"\s*[\]\)\}>]?[*_`]*", re.IGNORECASE)


def _clean_value(value: str) -> str:
    """The replacement from what followed a marker: no quotes, notes, arrows or end punctuation."""
    value = value.strip()
    # "great -> awful": the model restated the old word; keep the new one.
    parts = _ARROW.split(value)
    value = parts[-1] if len(parts) > 1 and parts[-1].strip() else value
    value = strip_quotes(value.strip().strip("*`"))  # unpaired markdown emphasis around the word
    value = _TRAILING_NOTE.sub("", value)
    value = strip_quotes(value.rstrip(" .,;"))
    return value.strip()


def _by_markers(text: str, n_blanks: int, pattern: re.Pattern[str]) -> dict[int, str]:
    """Replacements found after blank markers followed by ``:``, ``=`` or an arrow."""
    found: dict[int, str] = {}
    for line in text.split("\n"):
        line = _ANSWER_PREFIX.sub("", _LEADING_NUMBER.sub("", _BULLET.sub("", line)))
        head = pattern.match(line.strip())
        if head is None:
            continue
        # The line starts with a marker; it may hold several ("[BLANK1]: a, [BLANK2]: b").
        marked = list(pattern.finditer(line))
        for m, nxt in zip(marked, [*marked[1:], None]):
            rest = line[m.end() : nxt.start() if nxt is not None else len(line)]
            sep = re.match(r"\s*(?::|=|->|=>|\u2192|-)\s*(?:\*\*|__)?\s*", rest)
            if sep is None:
                continue
            number = int(m.group(1))
            value = _clean_value(rest[sep.end() :].rstrip().rstrip(","))
            # First answer per blank wins: later ones are usually the model rambling on.
            if 1 <= number <= n_blanks and number not in found and value and not pattern.fullmatch(value):
                found[number] = value
    return found


def _by_numbers(text: str, n_blanks: int) -> dict[int, str]:
    """Replacements from a numbered list (``1. awful``)."""
    found: dict[int, str] = {}
    for line in text.split("\n"):
        m = _NUMBERED.match(line)
        if m is None:
            continue
        number, value = int(m.group(1)), _clean_value(m.group(2))
        if 1 <= number <= n_blanks and number not in found and value:
            found[number] = value
    return found


def _by_json(text: str, n_blanks: int, pattern: re.Pattern[str]) -> dict[int, str]:
    """Replacements from a JSON object (``{"BLANK1": "awful"}``), for structured-output backends."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return {}
    try:
        obj = json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return {}
    found: dict[int, str] = {}
    if not isinstance(obj, dict):
        return found
    for key, value in obj.items():
        key = str(key).strip()
        m = pattern.fullmatch(key)
        number = int(m.group(1)) if m is not None else int(key) if key.isdigit() else 0
        if 1 <= number <= n_blanks and isinstance(value, (str, int, float)) and str(value).strip():
            found[number] = _clean_value(str(value))
    return found


def _by_bullets(text: str, n_blanks: int, pattern: re.Pattern[str]) -> dict[int, str]:
    """Replacements from plain lines in order: bullets, or one short line for one blank."""
    lines = [line for line in text.split("\n") if line.strip() and not pattern.search(line)]
    bullets = [_BULLET.sub("", line) for line in lines if _BULLET.match(line)]
    if len(bullets) >= n_blanks:
        values = [_clean_value(b) for b in bullets[:n_blanks]]
    elif n_blanks == 1 and len(plain := [line for line in lines if not line.rstrip().endswith(":")]) == 1:
        # One short line after an optional "Here is the word:" preamble.
        value = _clean_value(_LABEL.sub("", plain[0]))
        values = [value] if len(value.split()) <= _MAX_FALLBACK_WORDS else []
    else:
        return {}
    return {k: v for k, v in enumerate(values, start=1) if v}


def _by_template(text: str, masked: str, n_blanks: int, blank: str) -> dict[int, str]:
    """Replacements read off an echo of the masked text with the blanks filled in.

    Small models often answer with the whole sentence instead of answer lines. Each
    blank is located by the words around it in ``masked`` (up to ~24 characters on
    each side, whitespace-flexible); what stands between them in the output is the
    replacement.
    """
    exact = re.compile(re.escape(blank.split("{i}")[0]) + r"(\d+)" + re.escape(blank.split("{i}")[1]))
    pieces = exact.split(masked)  # literal, number, literal, number, ..., literal
    literals, numbers = pieces[0::2], [int(x) for x in pieces[1::2]]
    found: dict[int, str] = {}

    def flexible(part: str) -> str:  # spaces may vary, but the echo stays on one line
        return r"[^\S\n]+".join(re.escape(word) for word in part.split())

    for j, number in enumerate(numbers):
        if not 1 <= number <= n_blanks or number in found:
            continue
        before, after = literals[j][-_CONTEXT:], literals[j + 1][:_CONTEXT]
        if len((before + after).strip()) < 4:  # too little context to anchor on
            continue
        left = (r"(?:^|(?<=\s))" if before[:1].isspace() or before == literals[j] else "") + flexible(before)
        left += r"[^\S\n]*" if before[-1:].isspace() or not before else ""
        right = (r"[^\S\n]*" if after[:1].isspace() else "") + flexible(after)
        m = re.search(left + r"(.{1,60}?)" + right, text, re.IGNORECASE)
        if m is not None:
            value = _clean_value(m.group(1))
            if value and not exact.search(value):
                found[number] = value
    return found


# Longest replacement a constrained answer may give per blank (characters).
MAX_ANSWER_CHARS = 40


def infill_answer_regex(n_blanks: int, blank: str = "[BLANK{i}]", max_words: int | None = None) -> str:
    """The infill answer format as a regular expression: one ``<blank>: <replacement>`` line per blank.

    Backends with structured output (vLLM) decode under it, so a small model cannot wander
    off the format; :func:`parse_infill` reads what it produces.

    Examples:
        >>> import re
        >>> bool(re.fullmatch(infill_answer_regex(2), "[BLANK1]: awful\\n[BLANK2]: rude"))
        True
        >>> bool(re.fullmatch(infill_answer_regex(2), "Sure! [BLANK1]: awful"))
        False
        >>> bool(re.fullmatch(infill_answer_regex(1, max_words=2), "[BLANK1]: not at all good"))
        False
        >>> [bool(re.fullmatch(infill_answer_regex(1, max_words=3), "[BLANK1]: " + v))
        ...  for v in ["isn't so-so", "JFREY_2017", "unintentionally", "isgirlisplayinggames"]]
        [True, False, True, False]
    """
    # No brackets (another blank), no sentence punctuation (a replacement is a word or phrase,
    # and without commas a small model cannot string a list of alternatives onto one line).
    value = r"[^\s\[\],;.!?][^\n\[\],;.!?]{0,%d}" % (MAX_ANSWER_CHARS - 1)
    if max_words is not None:  # a few words (people flip a label by changing few) of letters,
        # apostrophes and hyphens: no digits, quotes or underscores to glue nonsense together
        # Latin letters, accented ones too (the characters themselves); at most 15 a word, else a
        # model held to few words glues them together ("playsocceroutside").
        letters = "A-Za-z\u00c0-\u024f"
        word = "[%s][%s'-]{0,14}" % (letters, letters)
        value = r"%s( %s){0,%d}" % (word, word, max_words - 1)
    return "\n".join(re.escape(blank.format(i=k)) + ": " + value for k in range(1, n_blanks + 1))


def parse_infill(
    raw: str, n_blanks: int, blank: str = "[BLANK{i}]", masked: str | None = None
) -> tuple[list[str] | None, str | None]:
    """The replacement for each of ``n_blanks`` blanks, in order, or an error.

    Tries blank markers (``[BLANK1]: x``, ``BLANK1 = x``, ``Blank 1 -> x``), a JSON
    object, a numbered list, an echo of the ``masked`` text with the blanks filled, and
    bullets / a single short line (one blank); the first strategy that finds every blank
    wins (else the one that found most, to name what is missing). Markers for blanks
    beyond ``n_blanks`` are ignored (a model may echo the prompt's example).

    Args:
        raw: the generator's output.
        n_blanks: how many blanks the plan has (at least 1).
        blank: the blank format (``config.edit.blank``).
        masked: the masked segment the prompt showed (enables reading an echoed sentence).

    Examples:
        >>> parse_infill("1. awful\\n2) rude", 2)
        (['awful', 'rude'], None)
        >>> parse_infill("[BLANK1]: great -> awful (the opposite)", 1)
        (['awful'], None)
        >>> parse_infill("The food was cold and late.", 2, masked="The food was [BLANK1] and [BLANK2].")
        (['cold', 'late'], None)
        >>> parse_infill("I cannot help with that.", 2)
        (None, 'no replacement found for [BLANK1], [BLANK2]')
    """
    if n_blanks < 1:
        return None, "no blanks to fill"
    text = clean_output(raw)
    if not text:
        return None, "empty output"
    pattern = _blank_pattern(blank)
    strategies = [
        lambda: _by_markers(text, n_blanks, pattern),
        lambda: _by_json(text, n_blanks, pattern),
        lambda: _by_numbers(text, n_blanks),
        lambda: _by_template(text, masked, n_blanks, blank) if masked else {},
        lambda: _by_bullets(text, n_blanks, pattern),
    ]
    found: dict[int, str] = {}
    for strategy in strategies:
        result = strategy()
        if len(result) > len(found):
            found = result
        if len(found) == n_blanks:
            break
    missing = [blank.format(i=k) for k in range(1, n_blanks + 1) if k not in found]
    if len(missing) == n_blanks:
        return None, f"no replacement found for {', '.join(missing)}"
    if missing:
        have = [blank.format(i=k) for k in sorted(found)]
        return None, f"missing replacement for {', '.join(missing)} (found {', '.join(have)})"
    values = [found[k] for k in range(1, n_blanks + 1)]
    leftover = [v for v in values if pattern.search(v)]
    if leftover:
        return None, f"replacement still contains a blank marker: {leftover[0]!r}"
    return values, None


def parse_rewrite(raw: str, segment: str | None = None) -> tuple[str | None, str | None]:
    """The rewritten segment text, or an error.

    Strips chat-template leftovers, code fences, a preamble line or prefix ("Here is the
    rewritten text:", "Edited hypothesis:", the segment's own label), trailing notes
    ("Note: ...", "(Changed ...)") and surrounding quotes.

    Args:
        raw: the generator's output.
        segment: the edited segment's name, whose label (``Hypothesis:``) is stripped too.

    Examples:
        >>> parse_rewrite("Edited text: The film was great.\\n\\nNote: I changed one word.")
        ('The film was great.', None)
        >>> parse_rewrite("```\\n\\n```")
        (None, 'empty output')
    """
    text = clean_output(raw)
    lines = text.split("\n")
    # Drop trailing notes and explanations (everything from the first such line on).
    for i, line in enumerate(lines):
        if i > 0 and _TRAILING_SECTION.match(line):
            lines = lines[:i]
            break
    text = "\n".join(lines).strip()
    labels = [re.escape(segment)] if segment else []
    label_prefix = re.compile(
        r"^\s*(?:\*\*)?(?:(?:edited|rewritten|revised|new|modified)\s+)?(?:"
        + "|".join([*labels, "text"])
        + r")(?:\*\*)?\s*:\s*(?:\*\*)?\s*",
        re.IGNORECASE,
    )
    for _ in range(3):  # "Sure! Here is the edited text:\nHypothesis: ..." needs more than one pass
        before = text
        first, _, rest = text.partition("\n")
        if rest.strip() and first.rstrip().endswith(":") and (_PREAMBLE.match(first) or label_prefix.fullmatch(first)):
            text = rest.strip()
        text = _PREAMBLE.sub("", text, count=1).strip()
        text = label_prefix.sub("", text, count=1).strip()
        text = strip_quotes(text)
        if text == before:
            break
    if not text:
        return None, "empty output"
    return text, None
