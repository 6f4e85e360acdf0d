"""Search rounds: plan again what did not flip, with a wider mask, until a candidate is accepted.

After the first Generate → Filter pass, every (record, target label) whose plans got no accepted
candidate is planned again by the edit strategy (:meth:`~cda.edit.strategies.EditStrategy.widen`:
by default the mask grows by ``search.add_spans`` of Explain's spare spans), with demonstrations
retrieved again from a pool that now holds the run's accepted counterfactuals too, and sampled
with the round's seed. Only those plans go through Generate and Filter again, all of a round's
plans in one pass (so vLLM batches them together); the executor runs each round like the first.
Plans keep their ``round``; the audit keeps every round's candidates.

Examples:
    >>> from cda.records import EditPlan, Record
    >>> r = Record(index=0, segments={"text": "A dull film."}, label="Negative",
    ...            plans=[EditPlan(target_label="Positive", segment="text", round=1)])
    >>> [(target, plan.round) for target, plan in open_targets(r)]
    [('Positive', 1)]
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from cda.records import EditPlan, Record

if TYPE_CHECKING:
    from cda.config import Config
    from cda.generate.demonstrations import DemonstrationPool

log = logging.getLogger(__name__)

#: Runs Generate and Filter on records whose ``plans`` are the round's new plans; returns them.
RoundRunner = Callable[[list[Record]], list[Record]]


def open_targets(record: Record) -> list[tuple[str, EditPlan]]:
    """``(target label, its latest plan)`` for each target none of whose plans has a counterfactual.

    Examples:
        >>> from cda.records import EditPlan, Record
        >>> done = EditPlan(target_label="Positive", segment="text", selected=0)
        >>> open_targets(Record(index=0, segments={}, label="Negative", plans=[done]))
        []
    """
    latest: dict[str, EditPlan] = {}
    solved: set[str] = set()
    for plan in record.plans:
        if plan.selected is not None:
            solved.add(plan.target_label)
        if plan.target_label not in latest or plan.round >= latest[plan.target_label].round:
            latest[plan.target_label] = plan
    return [(target, plan) for target, plan in latest.items() if target not in solved]


def search(
    records: list[Record], config: "Config", run_round: RoundRunner, pool: "DemonstrationPool | None" = None
) -> list[Record]:
    """Rounds 2 .. ``search.rounds`` on ``records`` (after round 1 ran); returns the same records,
    each with its later rounds' plans appended.

    Args:
        records: the records after the first Generate → Filter pass.
        config: the run config (``search``, ``edit``, ``generate.demonstrations``).
        run_round: runs Generate → Filter on views of the records that hold only a round's plans.
        pool: the demonstration pool (``None``: no demonstrations); the run's accepted
            counterfactuals join it before each round when ``from_run`` is on.
    """
    from cda.edit.strategies import make_strategy
    from cda.generate.demonstrations import retrieve_for, run_demonstrations

    settings, demos = config.search, config.generate.demonstrations
    strategy = make_strategy(config)
    by_index = {record.index: record for record in records}
    for round in range(2, settings.rounds + 1):
        if pool is not None and demos is not None and demos.from_run:
            added = pool.add(run_demonstrations(records, demos.max_words))
            log.info("round %d: %d accepted edit(s) joined the demonstration pool", round, added)
        views = []
        for record in records:
            fresh = []
            for _, plan in open_targets(record):
                wider = strategy.widen(record, plan, round, settings.add_spans)
                if wider is None:
                    continue
                if pool is not None and demos is not None:
                    wider.demonstrations = retrieve_for(pool, record, wider, demos.k)
                fresh.append(wider)
            if fresh:
                views.append(record.model_copy(update={"plans": fresh}))
        if not views:
            log.info("round %d: every target has a counterfactual or cannot be searched further", round)
            break
        log.info("round %d: %d plan(s) of %d record(s)", round, sum(len(v.plans) for v in views), len(views))
        for view in run_round(views):
            by_index[view.index].plans.extend(view.plans)
    return records
