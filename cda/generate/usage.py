"""Token accounting of a generator backend, for the run log and benchmarks, and the
greedy-sampling rule the vLLM backends share.

Examples:
    >>> u = Usage()
    >>> u.add(prompt_tokens=120, completion_tokens=40, samples=2, truncated=1)
    >>> u.completion_tokens, u.truncated
    (40, 1)
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from cda.protocols import SamplingSettings

log = logging.getLogger(__name__)


@dataclass
class Usage:
    """Counts over a generator's life: prompts sent, samples returned, tokens in and out,
    samples cut by ``max_new_tokens`` and prompts that failed."""

    prompts: int = 0
    samples: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: int = 0
    failed: int = 0

    def add(self, *, prompt_tokens: int = 0, completion_tokens: int = 0, samples: int = 0, truncated: int = 0) -> None:
        """Count one answered request."""
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.samples += samples
        self.truncated += truncated

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def requested_samples(sampling: SamplingSettings) -> int:
    """How many samples to ask the server/engine for: ``n``, but 1 for greedy decoding
    (vLLM rejects ``n > 1`` at temperature 0; the samples would all be the same anyway).

    Examples:
        >>> requested_samples(SamplingSettings(n=4, temperature=0.0))
        1
    """
    return 1 if sampling.temperature == 0 else sampling.n


def repeat_greedy(texts: list[str], sampling: SamplingSettings) -> list[str]:
    """The ``n`` samples the caller asked for: greedy's one text repeated ``n`` times.

    Examples:
        >>> repeat_greedy(["a"], SamplingSettings(n=3, temperature=0.0))
        ['a', 'a', 'a']
    """
    if sampling.temperature == 0 and sampling.n > 1 and len(texts) == 1:
        log.debug("temperature 0 (greedy): repeating the one sample %d times", sampling.n)
        return texts * sampling.n
    return texts
