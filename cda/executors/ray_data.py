"""The ``ray`` executor: each stage as a Ray Data ``map_batches`` actor pool over the same stage classes.

Records travel as Arrow batches (one JSON string per record); each actor builds its stage once
(models load once per actor: the classifier, a vLLM engine) and processes batches with the
stage's own ``process``. A stage finishes before the next starts (as locally): its actors, and
their models, are gone before the next stage's load, and a small cluster never waits on CPUs
held by another stage's idle actors. The driver first resolves what must not be trained twice, the
task classifier and a trained generator's adapter, into folders (``classifier.path``,
``generator.path``), so actors only load them. The content-hash cache is shared by every
actor: a rerun after a failure recomputes only what no actor finished (put ``cache_dir`` on
storage all nodes see when the cluster has several). The records come back sorted by index
and go to the same export as a local run.

    executor: {name: ray, address: null, replicas: {explain: 2, generate: 1}, num_gpus: {generate: 1}}

``address: null`` starts a local cluster with ``num_cpus`` CPUs; ``auto`` or
``ray://host:10001`` joins a running one. Needs ``pip install 'cda[ray]'``.

Examples:
    >>> from cda.registry import executors
    >>> executors.settings({"name": "ray", "replicas": {"generate": 2}}, "executor").replicas
    {'generate': 2}
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pydantic import Field, field_validator

from cda.errors import CdaError
from cda.registry import ComponentSettings, executors

if TYPE_CHECKING:
    from cda.pipeline import Components, Runner
    from cda.records import Record

log = logging.getLogger(__name__)

STAGES = ("explain", "edit", "generate", "filter")
RAY_INSTALL = "pip install 'cda[ray]' (ray[data]==2.60.0)"
# Environment every worker gets: the same thread settings and offline mode as this process.
_ENV_KEYS = ("OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "CDA_CACHE_DIR",
             "VLLM_CPU_KVCACHE_SPACE", "VLLM_LOGGING_CONFIG_PATH")


class RayError(CdaError, RuntimeError):
    """Ray is missing or the cluster cannot be reached; the message says what to do."""


class RaySettings(ComponentSettings):
    """``executor: {name: ray, ...}``."""

    # None: start a local cluster in this process; "auto" or "ray://host:10001": join one.
    address: str | None = None
    # CPUs of a local cluster (None: all of this machine's).
    num_cpus: int | None = Field(default=None, ge=1)
    # Records per batch a stage actor processes (and caches) at once.
    batch_size: int = Field(default=64, ge=1)
    # Actors per stage (default 1): explain/filter scale with CPUs or GPUs, generation with engines.
    replicas: dict[str, int] = Field(default_factory=dict)
    # CPUs and GPUs each actor of a stage reserves (default: 1 CPU, no GPU).
    num_cpus_per_actor: dict[str, float] = Field(default_factory=dict)
    num_gpus: dict[str, float] = Field(default_factory=dict)

    @field_validator("replicas", "num_cpus_per_actor", "num_gpus")
    @classmethod
    def _stage_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = [k for k in value if k not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; the stages are {list(STAGES)}")
        bad = [k for k, v in value.items() if v < (1 if isinstance(v, int) else 0)]
        if bad:
            raise ValueError(f"stage(s) {bad} need a positive value")
        return value


def require_ray() -> Any:
    """Import and return ``ray`` (with Ray Data).

    Raises:
        RayError: Ray is not installed.
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ModuleNotFoundError as e:
        raise RayError(f"executor 'ray' needs Ray Data, which is not installed ({e}): {RAY_INSTALL}") from None
    return ray


class StageActor:
    """A Ray actor holding one stage: built and loaded once, then fed Arrow batches of records."""

    def __init__(self, config: dict, stage: str, use_cache: bool, components: "Components | None") -> None:
        from cda.config import config_from_dict
        from cda.pipeline import Components, Runner

        self.runner = Runner(config_from_dict(config, source="ray executor"), use_cache=use_cache,
                             components=components or Components())
        (self.stage,) = self.runner.stages([stage])
        self.stage.load()

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        from cda.records import Record

        records = [Record.model_validate_json(text) for text in batch.column("record").to_pylist()]
        out = self.stage.process(records)
        return pa.table({"index": [r.index for r in out], "record": [r.model_dump_json() for r in out]})


@executors.register("ray")
class RayExecutor:
    """Runs the stages as Ray Data actor pools (see the module docstring)."""

    Settings = RaySettings

    def __init__(self, settings: RaySettings) -> None:
        self.settings = settings

    def run(self, runner: "Runner", records: "list[Record]", names: Sequence[str],
            train_records: "list[Record] | None") -> "list[Record]":
        from cda.records import Record

        ray = require_ray()
        config = self.resolved_config(runner, names, train_records)
        self._init(ray)
        start = time.perf_counter()
        data = ray.data.from_items([{"index": r.index, "record": r.model_dump_json()} for r in records])
        components = runner.components if _has_components(runner.components) else None
        for name in [n for n in STAGES if n in names]:
            data = data.map_batches(
                StageActor,
                fn_constructor_kwargs={"config": config.model_dump(mode="json"), "stage": name,
                                       "use_cache": runner.cache.enabled, "components": components},
                compute=ray.data.ActorPoolStrategy(size=self.settings.replicas.get(name, 1)),
                batch_size=self.settings.batch_size,
                batch_format="pyarrow",
                num_cpus=self.settings.num_cpus_per_actor.get(name, 1),
                num_gpus=self.settings.num_gpus.get(name, 0),
            ).materialize()  # fmt: skip
        rows = data.take_all()
        out = sorted((Record.model_validate_json(row["record"]) for row in rows), key=lambda r: r.index)
        runner.summary.seconds["ray"] = time.perf_counter() - start
        runner.summary.update_from(out)
        if len(out) != len(records):
            raise RayError(f"the Ray run returned {len(out)} records for {len(records)} inputs")
        return out

    def resolved_config(self, runner: "Runner", names: Sequence[str], train_records: "list[Record] | None") -> Any:
        """The run config with the task classifier and a trained generator as folders, trained or loaded
        here once, so that every actor loads them instead of training its own."""
        config = runner.config
        needs_classifier = any(n in names for n in ("explain", "filter"))
        if needs_classifier and runner.components.classifier is None and config.classifier.path is None:
            classifier = runner.classifier(train_records)
            folder = runner.cache.root / "ray" / "classifiers" / classifier.name.replace("/", "_")
            from cda.explain.classifier import META_FILE

            if not (folder / META_FILE).is_file():  # the name identifies the trained weights: saved once
                classifier.save(folder)  # type: ignore[attr-defined]
            config = config.model_copy(update={"classifier": config.classifier.model_copy(update={"path": str(folder)})})
        if "generate" in names and config.generator is not None and config.generator.path is None:
            adapter = runner.generation_config(train_records).generate.lora_path
            config = config.model_copy(update={"generator": config.generator.model_copy(update={"path": adapter})})
        return config

    def _init(self, ray: Any) -> None:
        # Ray's driver loggers print to the terminal themselves: hand them to cda's handlers
        # (the terminal shows their warnings, the run's log file everything).
        for name in ("ray", "ray.data"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
        # Ray Data warns on every run that its progress bars are off; cda turns them off on purpose.
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
        if ray.is_initialized():
            return
        root = str(Path(__file__).resolve().parents[2])
        env = {k: os.environ[k] for k in _ENV_KEYS if k in os.environ}
        # Workers import cda (and a test's fakes) from where this process does.
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([os.getcwd(), root, *sys.path[1:4]]))
        try:
            ray.init(address=self.settings.address, num_cpus=self.settings.num_cpus if self.settings.address is None else None,
                     include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})  # fmt: skip
        except ConnectionError as e:
            raise RayError(f"cannot reach the Ray cluster at executor.address={self.settings.address!r}: {e}") from None
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        log.info("Ray cluster: %s", ray.cluster_resources())


def _has_components(components: "Components") -> bool:
    return any(getattr(components, name) is not None for name in ("classifier", "generator", "language_model"))
