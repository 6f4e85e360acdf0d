"""Export stage: records to ``datasets`` (augmented dataset and audit split), files, Hub, card.

* :mod:`~cda.export.dataset` — :func:`to_dataset`, :func:`to_audit_dataset`
* :mod:`~cda.export.writer` — :func:`write_outputs`, :func:`push_to_hub`
* :mod:`~cda.export.card` — :func:`render_card`
"""

from cda.export.card import render_card
from cda.export.dataset import to_audit_dataset, to_dataset
from cda.export.writer import push_to_hub, write_outputs

__all__ = ["push_to_hub", "render_card", "to_audit_dataset", "to_dataset", "write_outputs"]
