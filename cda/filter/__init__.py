"""Filter stage: one module per check, candidate selection, and the stage that runs them.

* :mod:`~cda.filter.logic` — well-formed edit: other segments kept, text outside spans kept, no leakage
* :mod:`~cda.filter.minimality` — token edit distance (:func:`token_edit_distance`, also used by evaluation)
* :mod:`~cda.filter.words` — every added word is an English word (no invented words, no other language)
* :mod:`~cda.filter.part_of_speech` — each blank keeps its part of speech (opt-in)
* :mod:`~cda.filter.duplicate` — repeats of an earlier sample of the same plan
* :mod:`~cda.filter.label` — the classifier reads the target label
* :mod:`~cda.filter.sentences` — every sentence of the edit, read alone, reads the target label (opt-in)
* :mod:`~cda.filter.fluency` — perplexity relative to the original's
* :mod:`~cda.filter.select` — the best accepted candidate per plan
"""

from cda.filter.minimality import token_edit_distance
from cda.filter.stage import FilterStage

__all__ = ["FilterStage", "token_edit_distance"]
