"""Human review of a build's candidates in Label Studio, and the decisions back into the data.

* :mod:`~cda.review.settings` — where Label Studio lives (pinned version, cache folders), its login
* :mod:`~cda.review.install` — its own virtualenv, installed once
* :mod:`~cda.review.server` — start it on 127.0.0.1, wait for ``/health``, stop it by process group
* :mod:`~cda.review.client` — the REST calls a round uses (requests + urllib3 ``Retry``)
* :mod:`~cda.review.candidates` — the audit's candidates, their stable ids, the word diff
* :mod:`~cda.review.labeling` — the review page (labeling config) and the tasks that fill it
* :mod:`~cda.review.decisions` — accepted / corrected / rejected / pending, from a snapshot export
* :mod:`~cda.review.recheck` — the build's filter on corrected texts
* :mod:`~cda.review.reviewed` — the reviewed dataset, audit and training pairs
* :mod:`~cda.review.rounds` — ``push`` and ``pull``, and the reviewed folder
* :mod:`~cda.review.agreement` — the filter against the reviewers, for ``cda evaluate``

Examples:
    >>> from cda.review import push, pull
    >>> push("outputs/imdb-dev", which="all", limit=40)  # doctest: +SKIP
    >>> pull("outputs/imdb-dev").output_dir  # doctest: +SKIP
    PosixPath('outputs/imdb-dev/review')
"""

from cda.review.client import LabelStudioClient
from cda.review.errors import LabelStudioError, ReviewError
from cda.review.rounds import PullResult, PushResult, pull, push
from cda.review.server import LabelStudioServer, serve, start_label_studio
from cda.review.settings import LABEL_STUDIO_VERSION, LabelStudioSettings

__all__ = [
    "LABEL_STUDIO_VERSION", "LabelStudioClient", "LabelStudioError", "LabelStudioServer", "LabelStudioSettings",
    "PullResult", "PushResult", "ReviewError", "pull", "push", "serve", "start_label_studio",
]
