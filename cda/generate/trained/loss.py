"""The generator's training loss: likelihood of the answers, unlikelihood of the copied words.

AutoCAD trains its infilling generator with ``NLL + α·UL``: the usual negative
log-likelihood of the right answer, plus the unlikelihood term of Welleck et al. (2020),
``-log(1 - p(token))``, on the tokens the model must *not* produce (the original words when
the prompt asks for another label). Only the replacement tokens of an unlikely answer are
penalised; its ``[BLANKk]:`` markers are shared with every likely answer.

Examples:
    >>> import torch
    >>> logits = torch.zeros(1, 2, 4)  # uniform over a vocabulary of 4: p = 0.25 per token
    >>> targets = torch.tensor([[1, 2]])
    >>> mask = torch.tensor([[1.0, 1.0]])
    >>> round(float(token_nll(logits, targets, mask)), 4)  # -log 0.25
    1.3863
    >>> round(float(token_unlikelihood(logits, targets, mask)), 4)  # -log 0.75
    0.2877
"""

from __future__ import annotations

import torch

# p(token) is clamped below 1 so that -log(1 - p) stays finite.
_MAX_PROB = 1.0 - 1e-5


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    total = mask.sum()
    return (values * mask).sum() / total if total > 0 else values.sum() * 0.0


def token_nll(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of ``targets`` over the positions where ``mask`` is 1.

    ``logits`` is ``(batch, positions, vocab)`` and already aligned with ``targets``
    (``logits[:, t]`` predicts ``targets[:, t]``).
    """
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    nll = -logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return _masked_mean(nll, mask)


def token_unlikelihood(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean ``-log(1 - p(target))`` over the positions where ``mask`` is 1 (Welleck et al., 2020)."""
    probs = torch.softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return _masked_mean(-torch.log1p(-probs.clamp(max=_MAX_PROB)), mask)


def generator_loss(
    logits: torch.Tensor, targets: torch.Tensor, likely_mask: torch.Tensor, unlikely_mask: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, float, float]:
    """``NLL(likely tokens) + alpha * UL(unlikely tokens)``, and the two terms as floats for the log."""
    nll = token_nll(logits, targets, likely_mask)
    ul = token_unlikelihood(logits, targets, unlikely_mask) if alpha > 0 else nll * 0.0
    return nll + alpha * ul, float(nll.detach()), float(ul.detach())
