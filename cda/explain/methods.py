"""Attribution methods by name (``explain.method``): each a registered class with its own settings.

``grad_x_input`` (no settings), ``integrated_gradients`` (``steps``) and ``occlusion`` (no
settings) wrap the functions of :mod:`cda.explain.attribution`; a new method is a subclass
of :class:`AttributionMethod` registered in :data:`cda.registry.attributions`. This module
imports no torch: the config names a method without loading a model.

Examples:
    >>> from cda.registry import attributions
    >>> attributions.settings({"name": "integrated_gradients", "steps": 32}, "explain.method").steps
    32
    >>> make_method("occlusion").name
    'occlusion'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from cda.registry import ComponentSettings, attributions

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TokenIds:
    """What a method may need of the tokenizer: the pad and mask token ids, and the batch size
    for methods that run many forward passes per input."""

    pad: int | None
    mask: int
    batch_size: int


class AttributionMethod:
    """Base class: ``scores`` gives one signed score per input position of a right-padded batch
    (positive: pushes toward the target label; ``fixed`` positions get 0)."""

    name: ClassVar[str] = ""
    Settings: ClassVar[type[ComponentSettings]] = ComponentSettings

    def __init__(self, settings: ComponentSettings) -> None:
        self.settings = settings

    def scores(self, model: Any, batch: dict[str, "torch.Tensor"], targets: "torch.Tensor",
               fixed: "torch.Tensor", ids: TokenIds) -> "torch.Tensor":
        raise NotImplementedError


@attributions.register("grad_x_input")
class GradXInput(AttributionMethod):
    """Gradient of the target log-probability times the input embedding (one backward pass)."""

    def scores(self, model, batch, targets, fixed, ids):
        from cda.explain.attribution import grad_x_input

        return grad_x_input(model, batch, targets)


@attributions.register("integrated_gradients")
class IntegratedGradients(AttributionMethod):
    """Gradients integrated from the pad-embedding baseline to the input in ``steps`` steps."""

    class Settings(ComponentSettings):
        steps: int = Field(default=16, ge=2)

    def scores(self, model, batch, targets, fixed, ids):
        from cda.explain.attribution import integrated_gradients

        return integrated_gradients(model, batch, targets, fixed, self.settings.steps, ids.pad, ids.batch_size)  # type: ignore[attr-defined]


@attributions.register("occlusion")
class Occlusion(AttributionMethod):
    """Drop in the target probability when a token is replaced by the mask (or pad) token."""

    def scores(self, model, batch, targets, fixed, ids):
        from cda.explain.attribution import occlusion

        return occlusion(model, batch, targets, fixed, ids.mask, ids.batch_size)


def make_method(method: str | ComponentSettings) -> AttributionMethod:
    """The attribution method a name or an ``explain.method`` section describes.

    Raises:
        ComponentError: an unknown method, or settings it refuses.
    """
    settings = attributions.settings(method, "explain.method")
    return attributions.get(settings.name)(settings)
