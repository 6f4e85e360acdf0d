"""Token attribution on the embedding layer of a sequence classifier, toward a target label.

Three methods, all returning one signed score per input position (positive: the token
pushes the model toward the target label; padding and fixed positions get 0):

* ``grad_x_input``: gradient of the target log-probability times the input embedding
  (one forward + backward pass per batch).
* ``integrated_gradients``: the same, integrated along a straight path from a baseline
  (the pad-token embedding, or zeros when the model has no pad token) to the input in
  ``steps`` midpoint steps; special tokens stay fixed on the path.
* ``occlusion``: drop in the target probability when a token is replaced by
  ``[MASK]`` (or pad): one forward pass per token.

The functions take a right-padded batch of tensors (``input_ids``, ``attention_mask``
and any other model inputs such as ``token_type_ids``) and a boolean ``fixed`` mask of
positions never scored (special tokens, separators, padding).
:class:`~cda.explain.classifier_model.TransformersClassifier` maps the scores back to
character offsets.

Examples:
    >>> batch, fixed = clf.collate(clf.encode([{"text": "A dull film."}]), [0])  # clf: a TransformersClassifier
    >>> targets = torch.tensor([clf.labels.index("Negative")])
    >>> scores = grad_x_input(clf.model, batch, targets)
    >>> scores.shape == batch["input_ids"].shape
    True
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import torch

Batch = dict[str, torch.Tensor]


class BatchingClassifier(Protocol):
    """What :func:`forward_backward_seconds` needs of a classifier.

    :class:`~cda.explain.classifier_model.TransformersClassifier` is one; naming the
    protocol here keeps this module free of the classifier (which imports it).
    """

    model: torch.nn.Module

    def encode(self, inputs: list[dict[str, str]]) -> Any: ...

    def batches(self, encoded: Any) -> list[list[int]]: ...

    def collate(self, encoded: Any, idx: list[int]) -> tuple[Batch, torch.Tensor]: ...


def _extra_inputs(batch: Batch) -> Batch:
    return {k: v for k, v in batch.items() if k != "input_ids"}


def target_log_probs(model: torch.nn.Module, embeds: torch.Tensor, extra: Batch, targets: torch.Tensor) -> torch.Tensor:
    """``log p(target | embeds)`` per row, from input embeddings (the model adds positions)."""
    logits = model(inputs_embeds=embeds, **extra).logits
    return logits.float().log_softmax(-1).gather(1, targets[:, None]).squeeze(1)


def grad_x_input(model: torch.nn.Module, batch: Batch, targets: torch.Tensor) -> torch.Tensor:
    """Gradient × input, summed over the embedding dimension.

    Args:
        model: a sequence classifier (``model(inputs_embeds=..., attention_mask=...).logits``).
        batch: right-padded model inputs with ``input_ids``.
        targets: ``[batch]`` label ids to attribute toward.

    Returns:
        ``[batch, length]`` scores (padding positions are 0).

    Examples:
        >>> batch, _ = clf.collate(clf.encode([{"text": "A dull film."}]), [0])
        >>> grad_x_input(clf.model, batch, torch.tensor([1])).shape  # [CLS] a dull film . [SEP]
        torch.Size([1, 6])
    """
    embeds = model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)
    with torch.enable_grad():
        log_probs = target_log_probs(model, embeds, _extra_inputs(batch), targets)
        # Rows are independent, so the gradient of the sum is each row's own gradient.
        (grad,) = torch.autograd.grad(log_probs.sum(), embeds)
    scores = (grad * embeds).sum(-1).detach()
    return scores * batch["attention_mask"].to(scores.dtype)


def integrated_gradients(
    model: torch.nn.Module,
    batch: Batch,
    targets: torch.Tensor,
    fixed: torch.Tensor,
    steps: int = 16,
    baseline_id: int | None = None,
    chunk_size: int = 32,
) -> torch.Tensor:
    """Integrated gradients from a pad-token (or zero) baseline, midpoint Riemann sum.

    Args:
        model: a sequence classifier.
        batch: right-padded model inputs with ``input_ids`` and ``attention_mask``.
        targets: ``[batch]`` label ids.
        fixed: ``[batch, length]`` True where the token keeps its embedding on the path
            (special tokens) and gets no score.
        steps: interpolation steps (more: closer to the integral, slower).
        baseline_id: token whose embedding is the baseline; ``None`` for all zeros.
        chunk_size: interpolation points per forward pass.

    Returns:
        ``[batch, length]`` scores that sum (over all positions) to about
        ``log p(target | input) - log p(target | baseline)``.

    Examples:
        >>> batch, fixed = clf.collate(clf.encode([{"text": "A dull film."}]), [0])
        >>> scores = integrated_gradients(clf.model, batch, torch.tensor([0]), fixed, steps=8)
        >>> scores.shape, scores[fixed].abs().sum().item()  # special tokens get 0
        (torch.Size([1, 6]), 0.0)
    """
    embedding = model.get_input_embeddings()
    input_ids, attention = batch["input_ids"], batch["attention_mask"]
    scores = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
    alphas = (torch.arange(steps, dtype=torch.float32, device=input_ids.device) + 0.5) / steps
    for i in range(input_ids.shape[0]):
        # One example at a time, unpadded: the path points of one example share a length.
        n = int(attention[i].sum())
        ids = input_ids[i, :n]
        with torch.no_grad():
            x = embedding(ids).float()
            base = torch.zeros_like(x) if baseline_id is None else embedding(torch.full_like(ids, baseline_id)).float()
        keep = fixed[i, :n, None]
        base = torch.where(keep, x, base)
        delta = x - base
        extra = {k: v[i : i + 1, :n] for k, v in _extra_inputs(batch).items()}
        grad_sum = torch.zeros_like(x)
        for a in alphas.split(chunk_size):
            path = (base + a[:, None, None] * delta).to(embedding.weight.dtype).requires_grad_(True)
            rows = {k: v.expand(len(a), -1) for k, v in extra.items()}
            with torch.enable_grad():
                log_probs = target_log_probs(model, path, rows, targets[i].expand(len(a)))
                (grad,) = torch.autograd.grad(log_probs.sum(), path)
            grad_sum += grad.float().sum(0)
        scores[i, :n] = (delta * grad_sum / steps).sum(-1).masked_fill(fixed[i, :n], 0.0)
    return scores


def occlusion(
    model: torch.nn.Module,
    batch: Batch,
    targets: torch.Tensor,
    fixed: torch.Tensor,
    mask_id: int,
    chunk_size: int = 32,
) -> torch.Tensor:
    """Drop in the target probability when each token is replaced by ``mask_id``.

    Args:
        model: a sequence classifier.
        batch: right-padded model inputs with ``input_ids`` and ``attention_mask``.
        targets: ``[batch]`` label ids.
        fixed: ``[batch, length]`` True where tokens are never occluded (special tokens).
        mask_id: the replacement token (``[MASK]``, else pad).
        chunk_size: occluded copies per forward pass.

    Returns:
        ``[batch, length]`` scores ``p(target | x) - p(target | x with token masked)``.

    Examples:
        >>> batch, fixed = clf.collate(clf.encode([{"text": "A dull film."}]), [0])
        >>> scores = occlusion(clf.model, batch, torch.tensor([0]), fixed, mask_id=clf.tokenizer.mask_token_id)
        >>> scores.shape, scores[fixed].abs().sum().item()  # special tokens are never occluded
        (torch.Size([1, 6]), 0.0)
    """
    input_ids, attention = batch["input_ids"], batch["attention_mask"]
    scores = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
    with torch.no_grad():
        for i in range(input_ids.shape[0]):
            n = int(attention[i].sum())
            ids = input_ids[i, :n]
            extra = {k: v[i : i + 1, :n] for k, v in _extra_inputs(batch).items()}
            positions = (~fixed[i, :n]).nonzero().squeeze(1)
            p0 = model(input_ids=ids[None], **extra).logits.float().softmax(-1)[0, targets[i]]
            for chunk in positions.split(chunk_size):
                variants = ids.repeat(len(chunk), 1)
                variants[torch.arange(len(chunk), device=ids.device), chunk] = mask_id
                rows = {k: v.expand(len(chunk), -1) for k, v in extra.items()}
                probs = model(input_ids=variants, **rows).logits.float().softmax(-1)[:, targets[i]]
                scores[i, chunk] = p0 - probs
    return scores


def forward_backward_seconds(classifier: BatchingClassifier, inputs: list[dict[str, str]]) -> float:
    """Seconds of one plain forward + backward pass over ``inputs`` (batched as for attribution).

    The benchmark reports each attribution method's time as a ratio to this. The
    backward pass is a training-style one (loss on the logits, gradients for every
    trainable parameter); gradients are cleared afterwards.

    Examples:
        >>> seconds = forward_backward_seconds(clf, [{"text": "A dull film."}])
        >>> seconds > 0, all(p.grad is None for p in clf.model.parameters())
        (True, True)
    """
    model = classifier.model
    encoded = classifier.encode(inputs)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    for idx in classifier.batches(encoded):
        batch, _ = classifier.collate(encoded, idx)
        with torch.enable_grad():
            logits = model(**batch).logits
            logits.float().log_softmax(-1).max(-1).values.sum().backward()
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return seconds
