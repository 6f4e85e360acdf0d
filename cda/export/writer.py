"""Write the augmented dataset, the audit split, the summary, the config and the card;
push to the Hugging Face Hub.

Layout of ``export.output_dir``::

    dataset/          save_to_disk of the augmented dataset   (format "disk", the default)
    audit/            save_to_disk of the audit split          (export.audit)
    dataset.parquet   audit.parquet                            (format "parquet")
    dataset.jsonl     audit.jsonl                              (format "jsonl")
    summary.json      what happened to every row and candidate
    config.yaml       the resolved run config
    README.md         the dataset card

The Hub token is read from the environment only (``export.push_to_hub.token_env``); it is
never logged, printed or written (the config stores the variable's name, not its value).

Examples:
    >>> out = write_outputs(dataset, audit, summary.as_dict(), config)  # doctest: +SKIP
    >>> datasets.load_from_disk(out / "dataset")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import datasets
import yaml

from cda.config import Config, HubConfig
from cda.errors import CdaError
from cda.export.card import render_card

log = logging.getLogger(__name__)


class HubTokenError(CdaError, RuntimeError):
    """No Hugging Face token in the configured environment variable."""


class HubPushError(CdaError, RuntimeError):
    """Pushing to the Hub failed (the message never contains the token)."""


def _write(dataset: datasets.Dataset, name: str, out: Path, formats: list[str]) -> None:
    if "disk" in formats:
        dataset.save_to_disk(str(out / name))
    if "parquet" in formats:
        dataset.to_parquet(str(out / f"{name}.parquet"))
    if "jsonl" in formats:
        dataset.to_json(str(out / f"{name}.jsonl"), lines=True, force_ascii=False)


def write_outputs(
    dataset: datasets.Dataset,
    audit: datasets.Dataset | None,
    summary: dict,
    config: Config,
    output_dir: str | Path | None = None,
) -> Path:
    """Write everything of a run into ``output_dir`` (default ``export.output_dir``) and return it.

    The audit split is written when ``audit`` is given and ``export.audit`` is true. Nothing
    is pushed to the Hub here: call :func:`push_to_hub` for that.

    Args:
        dataset: the augmented dataset (:func:`cda.export.dataset.to_dataset`).
        audit: the audit split (:func:`cda.export.dataset.to_audit_dataset`), or ``None``.
        summary: :meth:`cda.pipeline.Summary.as_dict` of the run.
        config: the resolved run config (written as ``config.yaml``).
        output_dir: where to write, overriding ``export.output_dir``.

    Examples:
        >>> import datasets, tempfile
        >>> from cda.config import config_from_dict
        >>> from cda.export.dataset import to_audit_dataset, to_dataset
        >>> cfg = config_from_dict({"data": {"path": "x.tsv"}, "task": {"segments": {"text": "Text"},
        ...                         "label_column": "Sentiment", "labels": ["Negative", "Positive"]}})
        >>> table = datasets.Dataset.from_dict({"Text": ["A dull film."], "Sentiment": ["Negative"]})
        >>> out = write_outputs(to_dataset(table, [], cfg), to_audit_dataset([], cfg), {"rows": 1}, cfg,
        ...                     tempfile.mkdtemp())
        >>> sorted(p.name for p in out.iterdir())
        ['README.md', 'audit', 'config.yaml', 'dataset', 'summary.json']
    """
    final = Path(output_dir or config.export.output_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the final folder, then swapped in: a crash never leaves a half-written
    # output, and no file of an earlier run stays among the new ones.
    out = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        _write_all(dataset, audit, summary, config, out, final)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    _swap(out, final)
    log.info("wrote %d rows (%s) to %s", len(dataset), ", ".join(config.export.formats), final)
    return final


def _swap(new: Path, final: Path) -> None:
    """Put folder ``new`` at ``final``, replacing what was there."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_all(
    dataset: datasets.Dataset, audit: datasets.Dataset | None, summary: dict, config: Config, out: Path, final: Path
) -> None:
    formats = list(config.export.formats)
    _write(dataset, "dataset", out, formats)
    audit = audit if config.export.audit else None
    if audit is not None:
        _write(audit, "audit", out, formats)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    config_yaml = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    (out / "config.yaml").write_text(config_yaml, encoding="utf-8")
    card = render_card(config, summary, dataset, audit, output_dir=final)
    (out / "README.md").write_text(card, encoding="utf-8")


def hub_token(hub: HubConfig) -> str:
    """The token in the environment variable ``hub.token_env``.

    Raises:
        HubTokenError: the variable is unset or empty.

    Examples:
        >>> import os
        >>> os.environ["MY_HF_TOKEN"] = "hf_example"
        >>> hub_token(HubConfig(repo_id="me/data", token_env="MY_HF_TOKEN"))
        'hf_example'
    """
    token = os.environ.get(hub.token_env, "").strip()
    if not token:
        raise HubTokenError(
            f"Pushing to {hub.repo_id!r} needs a Hugging Face token with write access in the environment "
            f"variable {hub.token_env} (export.push_to_hub.token_env), which is unset or empty. "
            f"Set it, e.g. `export {hub.token_env}=hf_...`; the token is never written to the config."
        )
    return token


def push_to_hub(
    dataset: datasets.Dataset,
    hub: HubConfig,
    audit: datasets.Dataset | None = None,
    card: str | None = None,
) -> str:
    """Push the dataset (config ``default``) and the audit split (config ``audit``) to the Hub.

    The repository is created private when ``hub.private``. With ``card``, the text of
    :func:`~cda.export.card.render_card` becomes the repository's README; the metadata
    that ``datasets`` wrote there (configs, features) is kept.

    Returns:
        The dataset's URL.

    Raises:
        HubTokenError: no token in ``hub.token_env``.
        HubPushError: the Hub refused or could not be reached (the token is scrubbed
            from the message).

    Examples:
        >>> push_to_hub(dataset, HubConfig(repo_id="me/imdb-cad"))  # doctest: +SKIP
        'https://huggingface.co/datasets/me/imdb-cad'
    """
    token = hub_token(hub)
    try:
        dataset.push_to_hub(hub.repo_id, private=hub.private, token=token)
        if audit is not None:
            audit.push_to_hub(hub.repo_id, config_name="audit", private=hub.private, token=token)
        if card is not None:
            from huggingface_hub import DatasetCard

            pushed = DatasetCard.load(hub.repo_id, repo_type="dataset", token=token)
            ours = DatasetCard(card)
            for key, value in ours.data.to_dict().items():
                pushed.data[key] = value
            pushed.text = ours.text
            pushed.push_to_hub(hub.repo_id, repo_type="dataset", token=token)
    except Exception as e:  # noqa: BLE001 - any Hub failure: re-raise without the token in it
        message = f"{type(e).__name__}: {e}".replace(token, "***")
        raise HubPushError(f"Pushing to the Hub repository {hub.repo_id!r} failed: {message}") from None
    url = f"https://huggingface.co/datasets/{hub.repo_id}"
    log.info("pushed %d rows to %s", len(dataset), url)
    return url
