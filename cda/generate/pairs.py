"""Human counterfactual pairs: read a Kaushik-style file into (original, counterfactual) pairs.

Both the trained generator (``generator.train.pairs``) and retrieved demonstrations
(``generate.demonstrations.pairs``) read pairs this way: one file whose originals and
counterfactuals share a ``key`` value, or a file of revisions of an ``originals`` file by
position (``per_original`` revisions per original, the NLI ``revised_*`` files).

Examples:
    >>> from cda import load_config
    >>> cfg = load_config("configs/imdb.yaml")
    >>> pairs = read_pairs(PairsConfig(path="demo/imdb_pairs.tsv", key="batch_id"), cfg)
    >>> original, revised, target, segment = pairs[0]
    >>> (original.label, target, segment)
    ('Negative', 'Positive', 'text')
"""

from __future__ import annotations

from cda.config import Config, DataConfig, PairsConfig
from cda.errors import CdaError
from cda.records import Record


class PairsError(CdaError, ValueError):
    """A pairs file has no usable pairs, or its key column is missing."""


Pair = tuple[Record, dict[str, str], str, str]


def read_pairs(spec: PairsConfig, config: Config, where: str = "pairs") -> list[Pair]:
    """``(original, revised segments, target label, edited segment)`` for every pair, both directions.

    Both directions of every pair are used (a human counterfactual flipped back is the
    original: both are minimal label-flipping edits). A pair must differ in exactly one
    segment and have two different task labels. ``spec.limit`` keeps a seeded sample of pairs.

    Args:
        spec: the file and how it pairs up.
        config: the run config (``task``, ``seed``).
        where: the config key, for error messages (``generator.train.pairs``).

    Raises:
        FileNotFoundError: a pairs file does not exist.
        PairsError: the key column is missing, or nothing pairs up.
    """
    from cda.data import load_table, sample_indices
    from cda.evaluate.reference import pair_reference, reference_rows

    task = config.task
    out: list[Pair] = []

    def add(a: tuple[dict[str, str], str], b: tuple[dict[str, str], str]) -> None:
        changed = [name for name in a[0] if a[0][name].strip() != b[0][name].strip()]
        if len(changed) == 1 and a[1] != b[1] and {a[1], b[1]} <= set(task.labels):
            out.append((Record(index=len(out), segments=a[0], label=a[1]), b[0], b[1], changed[0]))
            out.append((Record(index=len(out), segments=b[0], label=b[1]), a[0], a[1], changed[0]))

    table = load_table(DataConfig(path=spec.path))
    rows = reference_rows(table, task)
    if spec.key is not None:
        if spec.key not in table.column_names:
            raise PairsError(f"{where}.key {spec.key!r} is not a column of {spec.path}: {table.column_names}")
        groups: dict[str, list[int]] = {}
        for j, value in enumerate(table[spec.key]):
            groups.setdefault(str(value), []).append(j)
        for members in groups.values():
            for x, i in enumerate(members):
                for j in members[x + 1 :]:
                    add(rows[i], rows[j])
    else:
        originals_table = load_table(DataConfig(path=str(spec.originals)))
        originals = [Record(index=i, segments=s, label=label) for i, (s, label) in enumerate(reference_rows(originals_table, task))]
        pairing = pair_reference(originals, None, table, task, key=None, per_original=spec.per_original)
        for cf in pairing.counterfactuals:
            original = originals[cf.original_index]
            add((original.segments, original.label), (cf.segments, cf.target))
    if not out:
        raise PairsError(f"{where}: no original/counterfactual pairs with one edited segment in {spec.path}")
    keep = sample_indices(len(out) // 2, spec.limit, config.seed)
    return [out[2 * k + d] for k in keep for d in (0, 1)]
