"""Reviewers' decisions applied to a build: the reviewed dataset, audit and training pairs.

The reviewed dataset has the build's schema plus the ``cda_review_*`` columns of
:func:`review_columns`. Per edit plan it keeps at most one counterfactual, as the build does:

* the filter's selected candidate stays unless a reviewer **rejected** it (then its row leaves);
  when **corrected**, the reviewer's text replaces the generated one and the build's filter
  checks it again (``cda_checks`` and the measures are the new ones, ``cda_review_generated``
  keeps the generated text);
* with ``rescue``, a plan whose selected candidate was rejected, or that had none, gets the
  first candidate a reviewer accepted or corrected (``cda_review_rescued``), even one the
  filter dropped: the reviewer overrules the filter.

Every accepted or corrected candidate (rescued or not) becomes a training pair of
``reviewed_pairs.tsv`` (:func:`pair_rows`).

Examples:
    >>> from cda.evaluate.build_output import load_build_output
    >>> from cda.review.decisions import Decision
    >>> build = load_build_output(build_dir)
    >>> ids = [c.candidate_id for c in read_candidates(build.audit)]
    >>> reviewed = apply_review(build, {ids[0]: Decision(ids[0], "rejected", reasons=["not fluent"]),
    ...                                 ids[1]: Decision(ids[1], "accepted")})
    >>> reviewed.dataset["cda_review_status"][3:], reviewed.dataset["cda_review_rescued"][3:]
    (['accepted', 'unreviewed'], [True, False])
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import datasets

from cda.config import Config
from cda.data import is_sentence_list
from cda.evaluate.build_output import BuildOutput
from cda.export.dataset import PREFIX, label_encoder
from cda.records import SENTENCE_SEPARATOR
from cda.review.candidates import ReviewCandidate, read_candidates
from cda.review.decisions import STATUSES, UNREVIEWED, Decision
from cda.review.errors import ReviewError
from cda.review.recheck import RecheckItem, RecheckResult
from cda.training import IS_COUNTERFACTUAL, ORIGINAL_INDEX

log = logging.getLogger(__name__)

REVIEW = PREFIX + "review_"
#: The key column of ``reviewed_pairs.tsv``: original and counterfactual rows of a pair share it.
PAIR_KEY = "pair_id"

_B, _S = datasets.Value("bool"), datasets.Value("string")


@dataclass(frozen=True)
class ReviewColumn:
    name: str
    feature: Any
    meaning: str
    original: Any = None  # the value on an original row


def review_columns() -> list[ReviewColumn]:
    """The ``cda_review_*`` columns of the reviewed dataset, in order."""
    return [
        ReviewColumn(REVIEW + "status", _S, "accepted, corrected, pending (pushed, not reviewed yet) or unreviewed "
                     "(never pushed); rejected rows are left out (originals: empty)", ""),
        ReviewColumn(REVIEW + "candidate_id", _S, "the candidate's id in the audit and in Label Studio (originals: empty)", ""),
        ReviewColumn(REVIEW + "reviewer", _S, "who decided (Label Studio user), null when nobody did"),
        ReviewColumn(REVIEW + "time", _S, "when the decision was last saved (ISO 8601), null when nobody decided"),
        ReviewColumn(REVIEW + "rescued", _B, "true when a reviewer accepted a candidate the filter dropped or did not "
                     "select, and it took the plan's place", False),
        ReviewColumn(REVIEW + "generated", _S, "the generated text a correction replaced (null unless corrected)"),
        ReviewColumn(REVIEW + "recheck_passed", _B, "whether the corrected text passed the build's filter again "
                     "(null unless corrected)"),
    ]  # fmt: skip


@dataclass
class ReviewedBuild:
    """What :func:`apply_review` makes of a build and the decisions."""

    dataset: datasets.Dataset
    audit: datasets.Dataset
    records: list[dict[str, Any]]  # one per decided candidate of this build: decisions.jsonl
    pairs: list[dict[str, str]]  # rows of reviewed_pairs.tsv
    summary: dict[str, Any] = field(default_factory=dict)


Recheck = Callable[[list[RecheckItem]], list[RecheckResult]]


def _segments_of(text: str, candidate: ReviewCandidate) -> dict[str, str] | None:
    """The edited segment(s) of a corrected text, or ``None`` when its lines do not fit them."""
    names = candidate.edited_names
    if len(names) == 1:
        return {names[0]: text}
    parts = text.split(SENTENCE_SEPARATOR)
    if len(parts) != len(names):
        return None
    return dict(zip(names, parts))


def apply_review(
    build: BuildOutput,
    decisions: dict[str, Decision],
    *,
    rescue: bool = True,
    recheck: Recheck | None = None,
    drop_failed_recheck: bool = False,
) -> ReviewedBuild:
    """The reviewed dataset, audit, decision records and training pairs of ``build``.

    Args:
        build: the build (:func:`cda.evaluate.build_output.load_build_output`); needs its audit.
        decisions: ``candidate_id`` -> decision (:func:`cda.review.decisions.decisions_from_export`).
        rescue: let an accepted or corrected candidate take the place of a rejected or missing one.
        recheck: checks corrected texts (:class:`cda.review.recheck.FilterRecheck`); ``None``
            leaves them unchecked (``cda_review_recheck_passed`` null).
        drop_failed_recheck: leave out corrections that fail the recheck (default: the
            reviewer's word stands).

    Raises:
        ReviewError: the build has no audit split.
    """
    if build.audit is None:
        raise ReviewError(f"{build.root} has no audit/ split: review needs it (build with export.audit: true)")
    config = build.config
    candidates = read_candidates(build.audit)
    by_id = {c.candidate_id: c for c in candidates}
    unknown = sorted(set(decisions) - set(by_id))
    if unknown:
        log.warning("%d reviewed task(s) name candidates this build does not have (another build?), e.g. %s; left out",
                    len(unknown), unknown[0])  # fmt: skip
    list_segments = _list_segments(build.dataset, config)

    corrected: dict[str, dict[str, str]] = {}
    unusable: list[str] = []
    for cid, d in decisions.items():
        if cid in by_id and d.status == "corrected":
            segments = _segments_of(d.text or "", by_id[cid])
            if segments is None:
                unusable.append(cid)
            else:
                corrected[cid] = segments
    if unusable:
        log.warning("%d correction(s) do not split into their edited segments (one line per segment): counted as pending",
                    len(unusable))  # fmt: skip
    decisions = {cid: (Decision(cid, "pending", task_id=d.task_id) if cid in unusable else d) for cid, d in decisions.items()}

    rechecked: dict[str, RecheckResult] = {}
    if recheck is not None and corrected:
        items = []
        for cid, segments in corrected.items():
            row = build.audit[by_id[cid].row]
            items.append(RecheckItem(by_id[cid], segments, row["spans"], row["masked"] or "", row["prompt"] or "", list_segments))
        rechecked = dict(zip(corrected, recheck(items)))

    def usable(c: ReviewCandidate) -> bool:
        d = decisions.get(c.candidate_id)
        if d is None or not d.keeps:
            return False
        return not (drop_failed_recheck and c.candidate_id in rechecked and not rechecked[c.candidate_id].passed)

    # Per plan, in audit order (= the dataset's order of counterfactuals): which candidate gives the row.
    plans: dict[tuple[int, str, str], list[ReviewCandidate]] = {}
    for c in candidates:
        plans.setdefault(c.plan_key, []).append(c)
    chosen: dict[tuple[int, str, str], tuple[ReviewCandidate, bool]] = {}
    for key, members in plans.items():
        selected = next((c for c in members if c.selected), None)
        if selected is not None:
            d = decisions.get(selected.candidate_id)
            if d is None or d.status == "pending" or usable(selected):
                chosen[key] = (selected, False)
                continue
        if rescue:
            rescued = next((c for c in members if not c.selected and usable(c)), None)
            if rescued is not None:
                chosen[key] = (rescued, True)

    dataset = _reviewed_dataset(build, plans, chosen, decisions, corrected, rechecked, list_segments)
    audit = _reviewed_audit(build.audit, candidates, decisions, rechecked)
    records = [_record(by_id[cid], d, rechecked.get(cid), chosen) for cid, d in decisions.items() if cid in by_id]
    pairs = pair_rows(config, [(by_id[cid], decisions[cid]) for cid in decisions if cid in by_id and usable(by_id[cid])],
                      corrected)  # fmt: skip
    statuses = Counter(d.status for cid, d in decisions.items() if cid in by_id)
    flags = dataset[IS_COUNTERFACTUAL]
    rows = Counter(s for s, f in zip(dataset[REVIEW + "status"], flags) if f)
    summary = {
        "candidates_in_project": sum(statuses.values()),
        "decisions": {s: statuses.get(s, 0) for s in STATUSES},
        "unknown_candidates": len(unknown),
        "unusable_corrections": len(unusable),
        "rechecked": len(rechecked),
        "recheck_failed": sum(not r.passed for r in rechecked.values()),
        "recheck_failed_by": dict(Counter(r.failed for r in rechecked.values() if not r.passed).most_common()),
        "rescued": sum(rescued for _, rescued in chosen.values()),
        "training_pairs": len(pairs) // 2,
        "dataset": {
            "rows": len(dataset),
            "originals": sum(not f for f in flags),
            "counterfactuals": sum(flags),
            "counterfactuals_by_status": {s: rows.get(s, 0) for s in ("accepted", "corrected", "pending", UNREVIEWED)},
            "build_counterfactuals": sum(build.dataset[IS_COUNTERFACTUAL]),
        },
    }
    return ReviewedBuild(dataset=dataset, audit=audit, records=records, pairs=pairs, summary=summary)


def _list_segments(dataset: datasets.Dataset, config: Config) -> list[str]:
    return [name for name, column in config.task.segments.items()
            if column in dataset.features and is_sentence_list(dataset.features[column])]  # fmt: skip


def _reviewed_dataset(
    build: BuildOutput,
    plans: dict[tuple[int, str, str], list[ReviewCandidate]],
    chosen: dict[tuple[int, str, str], tuple[ReviewCandidate, bool]],
    decisions: dict[str, Decision],
    corrected: dict[str, dict[str, str]],
    rechecked: dict[str, RecheckResult],
    list_segments: list[str],
) -> datasets.Dataset:
    config, table = build.config, build.dataset
    columns = review_columns()
    features = datasets.Features({**table.features, **{c.name: c.feature for c in columns}})
    flags = table[IS_COUNTERFACTUAL]
    original_rows = [i for i, f in enumerate(flags) if not f]
    originals = table.select(original_rows)
    originals = originals.map(lambda row: {c.name: c.original for c in columns}, features=features)

    # The build's counterfactual rows by plan; rows of plans the audit does not know stay as they are.
    cf_rows = [i for i, f in enumerate(flags) if f]
    existing: dict[tuple[int, str, str], dict] = {}
    orphans: list[dict] = []
    for row in table.select(cf_rows).to_list() if cf_rows else []:
        key = (int(row[ORIGINAL_INDEX]), row[PREFIX + "target_label"], row[PREFIX + "edited_segment"])
        if key in plans:
            existing.setdefault(key, row)
        else:
            orphans.append(row)
    by_original = {int(i): row for i, row in zip(originals[ORIGINAL_INDEX], originals.to_list())} if chosen else {}
    encode = label_encoder(originals, config.task)

    rows = []
    for key in plans:  # audit order
        if key not in chosen:
            continue
        candidate, rescued = chosen[key]
        if not rescued and key in existing:
            row = dict(existing[key])
        else:
            row = _new_row(by_original[candidate.original_index], candidate, build, encode, list_segments)
        d = decisions.get(candidate.candidate_id)
        status = UNREVIEWED if d is None else d.status
        row.update({c.name: None for c in columns})
        row.update({REVIEW + "status": status, REVIEW + "candidate_id": candidate.candidate_id,
                    REVIEW + "reviewer": d.reviewer if d else None, REVIEW + "time": d.time if d else None,
                    REVIEW + "rescued": rescued})  # fmt: skip
        if status == "corrected":
            _set_segments(row, corrected[candidate.candidate_id], config, list_segments)
            row[REVIEW + "generated"] = candidate.text
            result = rechecked.get(candidate.candidate_id)
            if result is not None:
                row[PREFIX + "checks"] = json.dumps(result.checks, ensure_ascii=False)
                for name, value in result.measures.items():
                    if PREFIX + name in row:
                        row[PREFIX + name] = value
                row[REVIEW + "recheck_passed"] = result.passed
        rows.append(row)
    for row in orphans:
        row.update({c.name: None for c in columns})
        row.update({REVIEW + "status": UNREVIEWED, REVIEW + "candidate_id": "", REVIEW + "rescued": False})
        rows.append(row)
    if not rows:
        return originals
    counterfactuals = datasets.Dataset.from_list(rows, features=features)
    return datasets.concatenate_datasets([originals, counterfactuals])


def _set_segments(row: dict, segments: dict[str, str], config: Config, list_segments: list[str]) -> None:
    for name, text in segments.items():
        value: str | list[str] = text
        if name in list_segments:
            value = text.split(SENTENCE_SEPARATOR) if text else []
        row[config.task.segments[name]] = value


def _new_row(original: dict, candidate: ReviewCandidate, build: BuildOutput, encode, list_segments: list[str]) -> dict:
    """A counterfactual row for a candidate the build did not select, as the export writes one."""
    audit_row = build.audit[candidate.row]  # type: ignore[index]
    row = dict(original)
    _set_segments(row, _segments_of(candidate.text or "", candidate) or {}, build.config, list_segments)
    row[build.config.task.label_column] = encode(candidate.target_label)
    for column in build.dataset.column_names:
        if not column.startswith(PREFIX):
            continue
        name = column[len(PREFIX):]
        if name == "is_counterfactual":
            row[column] = True
        elif name == "rationale_spans":
            row[column] = audit_row["spans"]
        elif name in audit_row:
            row[column] = audit_row[name]
    return row


def _reviewed_audit(
    audit: datasets.Dataset, candidates: list[ReviewCandidate], decisions: dict[str, Decision],
    rechecked: dict[str, RecheckResult],
) -> datasets.Dataset:
    """The audit with ``review_*`` columns: every candidate's decision (``unreviewed`` if never pushed)."""
    values: dict[str, list] = {name: [] for name in ("review_candidate_id", "review_status", "review_text",
                                                     "review_reasons", "review_reviewer", "review_time", "review_recheck")}
    for c in candidates:
        d = decisions.get(c.candidate_id)
        result = rechecked.get(c.candidate_id)
        values["review_candidate_id"].append(c.candidate_id)
        values["review_status"].append(UNREVIEWED if d is None else d.status)
        values["review_text"].append(d.text if d is not None and d.status == "corrected" else None)
        values["review_reasons"].append(json.dumps(d.reasons if d else []))
        values["review_reviewer"].append(d.reviewer if d else None)
        values["review_time"].append(d.time if d else None)
        values["review_recheck"].append(json.dumps(result.checks, ensure_ascii=False) if result else None)
    features = datasets.Features({name: _S for name in values})
    return datasets.concatenate_datasets([audit, datasets.Dataset.from_dict(values, features=features)], axis=1)


def _record(c: ReviewCandidate, d: Decision, result: RecheckResult | None,
            chosen: dict[tuple[int, str, str], tuple[ReviewCandidate, bool]]) -> dict[str, Any]:
    """One line of ``decisions.jsonl``: the decision and what the filter said of the same candidate."""
    in_dataset = chosen.get(c.plan_key, (None, False))[0] is c
    return {
        **d.as_dict(),
        "original_index": c.original_index, "source_label": c.source_label, "target_label": c.target_label,
        "edited_segment": c.edited_segment, "sample_index": c.sample_index, "generated": c.text,
        "filter": {"accepted": c.accepted, "selected": c.selected, "drop_reason": c.drop_reason, "checks": c.checks},
        "recheck": None if result is None else {"passed": result.passed, "checks": result.checks},
        "in_dataset": in_dataset,
    }  # fmt: skip


def pair_rows(
    config: Config, kept: list[tuple[ReviewCandidate, Decision]], corrected: dict[str, dict[str, str]]
) -> list[dict[str, str]]:
    """Rows of ``reviewed_pairs.tsv``: per accepted or corrected candidate, its original and the
    counterfactual (the reviewer's text when corrected), sharing a :data:`PAIR_KEY`.

    The columns are the task's (segment columns, then the label column) and ``pair_id``: the
    paired format ``generator.train.pairs`` reads with ``key: pair_id``.
    """
    task = config.task
    rows = []
    for c, d in kept:
        edited = corrected.get(c.candidate_id) if d.status == "corrected" else _segments_of(c.text or "", c)
        if edited is None:
            continue
        revised = {**c.segments, **edited}
        for segments, label in ((c.segments, c.source_label), (revised, c.target_label)):
            row = {column: segments.get(name) or "" for name, column in task.segments.items()}
            row[task.label_column] = label
            row[PAIR_KEY] = c.candidate_id
            rows.append(row)
    return rows
