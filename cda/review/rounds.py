"""A review round: push a build's candidates to Label Studio, pull the decisions back.

``push`` creates (or reuses) the build's project, named after the build folder, and imports
the candidates ``--which`` asks for that are not there yet, so pushing again adds only new
ones. ``pull`` takes a snapshot export, reads every candidate's decision and writes the
reviewed folder (default ``<build>/review``), itself readable as a build::

    dataset/              the reviewed dataset (the build's columns + cda_review_*)
    audit/                the audit with review_* columns (every candidate's decision)
    decisions.jsonl       one line per candidate in the project: decision, reviewer, time, filter's verdict
    reviewed_pairs.tsv    accepted and corrected pairs, for generator.train.pairs (key: pair_id)
    config.yaml           the build's config
    summary.json          the build's summary, with a "review" section

Examples:
    >>> result = push("outputs/imdb-dev", which="all", limit=40)  # doctest: +SKIP
    >>> result.created, result.project_url  # doctest: +SKIP
    (40, 'http://127.0.0.1:8080/projects/1/data')
    >>> pull("outputs/imdb-dev").summary["decisions"]  # doctest: +SKIP
    {'accepted': 21, 'corrected': 4, 'rejected': 12, 'pending': 3}
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from cda.cache import fingerprint
from cda.evaluate.build_output import BuildOutput, load_build_output
from cda.pipeline import Components
from cda.review.candidates import WHICH, choose, read_candidates
from cda.review.client import LabelStudioClient, connect
from cda.review.decisions import decisions_from_export
from cda.review.errors import ReviewError
from cda.review.labeling import INSTRUCTIONS, MODEL_VERSION, label_config, to_task
from cda.review.reviewed import PAIR_KEY, ReviewedBuild, apply_review
from cda.review.settings import DEFAULT_TOKEN_ENV, DEFAULT_URL

log = logging.getLogger(__name__)

REVIEW_DIR = "review"
DECISIONS_FILE = "decisions.jsonl"
PAIRS_FILE = "reviewed_pairs.tsv"
TITLE_LIMIT = 50  # Label Studio's longest project title


def load_build(build_dir: str | Path) -> BuildOutput:
    """The build in ``build_dir``, which must have an audit split.

    Raises:
        ReviewError: no build there, or no audit split.
    """
    try:
        build = load_build_output(build_dir)
    except FileNotFoundError as e:
        raise ReviewError(str(e)) from None
    if build.audit is None:
        raise ReviewError(
            f"{build.root} has no audit/ split: review needs every candidate with its checks "
            "(build with export.audit: true and export.formats including disk)"
        )
    return build


def default_title(root: Path) -> str:
    """The project title of a build: its folder name and a hash of its full path (at most 50 characters).

    Examples:
        >>> default_title(Path("/data/outputs/imdb-dev"))
        'cda imdb-dev 17fb8b72'
    """
    digest = fingerprint(str(root.resolve()))[:8]
    return f"cda {root.resolve().name}"[: TITLE_LIMIT - 9] + f" {digest}"


@dataclass
class PushResult:
    project_id: int
    title: str
    project_url: str
    created: int
    already_there: int
    chosen: int
    without_text: int
    candidate_ids: list[str] = field(default_factory=list)


def ensure_project(client: LabelStudioClient, title: str, context: bool = False, description: str = "") -> dict:
    """The project called ``title``, created with the review page if there is none; an older
    review page is replaced by the current one."""
    config = label_config(context=context)
    found = client.projects(title)
    if found:
        project = found[0]
        if project.get("label_config", "").strip() != config.strip():
            log.info("updating the review page of project %s", project["id"])
            project = client.update_project(project["id"], label_config=config)
        return project
    client.validate_label_config(config)
    return client.create_project(
        title, config, description=description, expert_instruction=INSTRUCTIONS, show_instruction=True,
        show_collab_predictions=True, model_version=MODEL_VERSION, maximum_annotations=1,
    )  # fmt: skip


def push(
    build_dir: str | Path,
    which: str = "all",
    limit: int | None = None,
    url: str | None = None,
    token_env: str | None = None,
    *,
    title: str | None = None,
    client: LabelStudioClient | None = None,
) -> PushResult:
    """Push a build's candidates to Label Studio for review.

    Args:
        build_dir: the ``cda build`` output folder.
        which: ``accepted`` (passed every check), ``dropped`` (a check dropped them) or ``all``.
        limit: at most this many *new* tasks (in audit order), so repeated pushes go on where
            the last one stopped.
        url: the Label Studio server (default ``http://127.0.0.1:8080``).
        token_env: the environment variable holding its API token (default
            ``LABEL_STUDIO_API_KEY``; a server on this machine started by ``cda review serve``
            needs none).
        title: the project title (default: :func:`default_title` of the build).
        client: a client to use instead of connecting to ``url``.

    Raises:
        ReviewError: no build or audit there, an unknown ``which``, ``limit`` below 1.
        LabelStudioError: the server cannot be reached or refuses the token or a request.
    """
    if which not in WHICH:
        raise ReviewError(f"--which {which!r} is not allowed; use one of {', '.join(WHICH)}")
    if limit is not None and limit < 1:
        raise ReviewError(f"--limit must be at least 1, not {limit}")
    build = load_build(build_dir)
    everything = read_candidates(build.audit)  # type: ignore[arg-type]
    chosen = choose(everything, which)
    without_text = len(choose(everything, which, with_text=False)) - len(chosen)  # parse/generation failures
    client = client or connect(url or DEFAULT_URL, token_env or DEFAULT_TOKEN_ENV)
    title = title or default_title(build.root)
    project = ensure_project(client, title, context=len(build.config.task.segments) > 1,
                             description=f"cda build {build.root.resolve()}")  # fmt: skip
    existing = {str((t.get("data") or {}).get("candidate_id")) for t in client.tasks(project["id"])}
    new = [c for c in chosen if c.candidate_id not in existing]
    if limit is not None:
        new = new[:limit]
    created = client.import_tasks(project["id"], [to_task(c, build=str(build.root.resolve())) for c in new]) if new else 0
    return PushResult(
        project_id=int(project["id"]), title=title, project_url=f"{client.url}/projects/{project['id']}/data",
        created=created, already_there=sum(c.candidate_id in existing for c in chosen), chosen=len(chosen),
        without_text=without_text, candidate_ids=[c.candidate_id for c in new],
    )  # fmt: skip


@dataclass
class PullResult:
    output_dir: Path
    project_id: int
    summary: dict[str, Any]
    reviewed: ReviewedBuild


def find_project(client: LabelStudioClient, build: BuildOutput, project: int | None, title: str | None) -> int:
    """The id of ``project``, else of the project titled ``title`` (default: the build's).

    Raises:
        ReviewError: no such project.
    """
    if project is not None:
        client.project(project)
        return project
    title = title or default_title(build.root)
    found = client.projects(title)
    if not found:
        raise ReviewError(
            f"No Label Studio project titled {title!r} at {client.url} for {build.root}: push first "
            "(`cda review push BUILD_DIR`) or pass --project ID"
        )
    return int(found[0]["id"])


def pull(
    build_dir: str | Path,
    project: int | None = None,
    url: str | None = None,
    token_env: str | None = None,
    *,
    output_dir: str | Path | None = None,
    title: str | None = None,
    rescue: bool = True,
    recheck: bool = True,
    drop_failed_recheck: bool = False,
    components: Components | None = None,
    client: LabelStudioClient | None = None,
) -> PullResult:
    """Pull the decisions of a build's project and write the reviewed folder.

    Args:
        build_dir: the ``cda build`` output folder that was pushed.
        project: the Label Studio project id (default: the one :func:`push` made for the build).
        url: the Label Studio server; ``token_env`` as for :func:`push`.
        output_dir: where to write (default ``<build>/review``; replaced as a whole).
        title: the project title to look for, when not the default.
        rescue: let accepted candidates the filter dropped take a rejected or missing one's place.
        recheck: run the build's filter on corrected texts (loads its classifier and, for
            ``fluency``, a language model).
        drop_failed_recheck: leave out corrections that fail the recheck.
        components: models for the recheck (tests pass fakes).
        client: a client to use instead of connecting to ``url``.

    Raises:
        ReviewError: no build or audit there, or no project for it.
        LabelStudioError: the server cannot be reached or refuses the token or a request.
    """
    build = load_build(build_dir)
    client = client or connect(url or DEFAULT_URL, token_env or DEFAULT_TOKEN_ENV)
    project_id = find_project(client, build, project, title)
    tasks = client.export_snapshot(project_id)
    decisions = decisions_from_export(tasks)
    checker = None
    if recheck:
        from cda.review.recheck import FilterRecheck

        checker = FilterRecheck(build.config, components)
    reviewed = apply_review(build, decisions, rescue=rescue, recheck=checker, drop_failed_recheck=drop_failed_recheck)
    summary = {**reviewed.summary, "project": {"url": client.url, "id": project_id, "tasks": len(tasks)},
               "pulled_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    reviewed.summary = summary
    out = write_review(build, reviewed, Path(output_dir) if output_dir else build.root / REVIEW_DIR)
    return PullResult(output_dir=out, project_id=project_id, summary=summary, reviewed=reviewed)


def write_review(build: BuildOutput, reviewed: ReviewedBuild, final: Path) -> Path:
    """Write the reviewed folder (see the module's docstring) into ``final``, replacing it whole."""
    final.parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        reviewed.dataset.save_to_disk(str(out / "dataset"))
        reviewed.audit.save_to_disk(str(out / "audit"))
        with (out / DECISIONS_FILE).open("w", encoding="utf-8") as f:
            for record in reviewed.records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        write_pairs(out / PAIRS_FILE, reviewed.pairs, build)
        config_yaml = yaml.safe_dump(build.config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        (out / "config.yaml").write_text(config_yaml, encoding="utf-8")
        summary = {**(build.summary or {}), "review": reviewed.summary}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(out, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(out, final)
    log.info("wrote the reviewed dataset (%d rows) to %s", len(reviewed.dataset), final)
    return final


def write_pairs(path: Path, rows: list[dict[str, str]], build: BuildOutput) -> Path:
    """``reviewed_pairs.tsv``: the task's columns and :data:`~cda.review.reviewed.PAIR_KEY`, a header even when empty."""
    task = build.config.task
    header = [*task.segments.values(), task.label_column, PAIR_KEY]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path
