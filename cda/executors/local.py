"""The ``local`` executor: every stage in this process, in order (``executor: local``, the default)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from cda.registry import ComponentSettings, executors

if TYPE_CHECKING:
    from cda.pipeline import Runner
    from cda.records import Record


@executors.register("local")
class LocalExecutor:
    """Runs the stages one after another in this process (no settings)."""

    Settings = ComponentSettings

    def __init__(self, settings: ComponentSettings) -> None:
        self.settings = settings

    def run(self, runner: "Runner", records: "list[Record]", names: Sequence[str],
            train_records: "list[Record] | None") -> "list[Record]":
        from cda.pipeline import run_stages

        return run_stages(records, runner.stages(names, train_records), runner.summary)
