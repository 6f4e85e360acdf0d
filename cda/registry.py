"""Registries of cda's pluggable components, and the settings model each one owns.

Four kinds of component can be added without editing cda: generator **backends**, filter
**checks**, **edit strategies** and **attribution** methods. A component is a class with a
``name`` and a pydantic ``Settings`` model (a :class:`ComponentSettings`); registering it
makes its name usable in a config, where its section is ``{name: ..., <its settings>}``
and is validated by its own ``Settings`` (unknown keys and bad values are errors that
name the key and what is allowed).

Register with the decorator (spaCy's ``catalogue`` habit), or from another package with an
entry point in the group ``cda_<kind>`` (``cda_checks``, ``cda_backends``,
``cda_edit_strategies``, ``cda_attributions``)::

    [project.entry-points.cda_checks]
    shouting = "my_package.checks:Shouting"

Examples:
    >>> from cda.registry import ComponentSettings, checks
    >>> @checks.register("doctest_toy")
    ... class Toy:
    ...     class Settings(ComponentSettings):
    ...         limit: int = 3
    >>> checks.get("doctest_toy").Settings(name="doctest_toy").limit
    3
    >>> checks.settings({"name": "doctest_toy", "limit": 5}, "filter.checks").limit
    5
    >>> checks.settings({"name": "doctest_toy", "limt": 5}, "filter.checks")
    Traceback (most recent call last):
    ...
    cda.registry.ComponentError: filter.checks.limt: unknown key for check 'doctest_toy'; allowed: name, limit
    >>> checks.get("nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cda.registry.ComponentError: unknown check 'nope'; registered: claim_copy, constraints, doctest_toy, duplicate, ...
    >>> checks.unregister("doctest_toy")
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, Callable, Generic, TypeVar

import catalogue
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SerializeAsAny, ValidationError

from cda.errors import CdaError

T = TypeVar("T")


class ComponentError(CdaError, ValueError):
    """An unknown component name, or settings its ``Settings`` model refuses."""


class Strict(BaseModel):
    """Base of every cda settings model: unknown keys are errors, YAML types are kept
    (``true`` is not the number 1, ``"3"`` not the number 3)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


class ComponentSettings(Strict):
    """Settings of one registered component; ``name`` says which component they are for."""

    name: str


class Registry(Generic[T]):
    """Components of one kind by name.

    Args:
        kind: what the components are, in messages (``"check"``).
        group: the catalogue namespace and entry-point group suffix (``"checks"`` -> ``cda_checks``).
        builtins: modules that register cda's own components, imported on first lookup.
    """

    def __init__(self, kind: str, group: str, builtins: tuple[str, ...]) -> None:
        self.kind = kind
        self._registry = catalogue.create("cda", group, entry_points=True)
        self._builtins = builtins
        self._loaded = False

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._builtins:
                importlib.import_module(module)

    def register(self, name: str, *, func: T | None = None) -> Callable[[T], T]:
        """Register ``func`` (or the decorated class) under ``name``; a class that does not set its own
        ``name`` gets this one (a subclass of a registered component is not mistaken for its parent).

        Examples:
            >>> from cda.registry import backends
            >>> @backends.register("doctest_echo")
            ... class Echo: ...
            >>> Echo.name, "doctest_echo" in backends.names()
            ('doctest_echo', True)
            >>> backends.unregister("doctest_echo")
        """

        def decorate(component: T) -> T:
            if isinstance(component, type) and not vars(component).get("name"):
                component.name = name  # type: ignore[attr-defined]
            return self._registry.register(name, func=component)

        return decorate if func is None else decorate(func)  # type: ignore[return-value]

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests and notebooks that re-register a component)."""
        catalogue.REGISTRY.pop((*self._registry.namespace, name), None)

    def get(self, name: str) -> T:
        """The component registered as ``name``.

        Raises:
            ComponentError: nothing is registered under ``name`` (the message lists what is).
        """
        self._load_builtins()
        try:
            return self._registry.get(name)
        except catalogue.RegistryError:
            raise ComponentError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Every registered name, sorted (entry points included)."""
        self._load_builtins()
        return sorted(self._registry.get_all())

    def settings(self, value: Any, where: str, default_name: str | None = None) -> ComponentSettings:
        """Validate a config section for one component: a name, or ``{name: ..., <settings>}``.

        Args:
            value: the section as written (a string is the name with default settings).
            where: the section's config path, for messages (``"generate.backend"``).
            default_name: the component a mapping without ``name`` is for.

        Raises:
            ComponentError: not a name or mapping, an unknown name, or settings refused
                (one line per problem, each naming the key and what is allowed).
        """
        if isinstance(value, ComponentSettings):
            return value
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict) and "name" not in value and default_name is not None:
            value = {**value, "name": default_name}
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ComponentError(f"{where} must be a {self.kind} name or a mapping with 'name'; got {value!r}")
        try:
            model: type[ComponentSettings] = self.get(value["name"]).Settings  # type: ignore[attr-defined]
        except ComponentError as e:
            raise ComponentError(f"{where}: {e}") from None
        try:
            return model.model_validate(value)
        except ValidationError as e:
            raise ComponentError("; ".join(_problem(err, where, self.kind, value["name"], model) for err in e.errors())) from None


def _problem(err: Any, where: str, kind: str, name: str, model: type[BaseModel]) -> str:
    key = ".".join([where, *(str(p) for p in err["loc"])])
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key for {kind} {name!r}; allowed: {', '.join(model.model_fields)}"
    if err["type"] == "value_error":
        return f"{key}: {err['msg'].removeprefix('Value error, ')}"
    return f"{key}: {err['msg']} (got {err.get('input')!r})"


def component_field(registry: Registry[Any], where: str, default: str) -> Any:
    """The type of a config field that holds one registered component: a name or
    ``{name: ..., <settings>}``, validated by that component's ``Settings``; ``default``'s
    defaults when the section is absent (a mapping without ``name`` is for ``default``).

    Examples:
        >>> from pydantic import BaseModel
        >>> class Section(BaseModel):
        ...     method: component_field(attributions, "explain.method", "grad_x_input")
        >>> Section().method.name, Section(method={"name": "integrated_gradients", "steps": 4}).method.steps
        ('grad_x_input', 4)
    """

    def validate(value: Any) -> ComponentSettings:
        try:
            return registry.settings(value, where, default_name=default)
        except ComponentError as e:
            raise ValueError(str(e)) from None

    return Annotated[
        SerializeAsAny[ComponentSettings],
        BeforeValidator(validate),
        Field(default_factory=lambda: registry.settings(default, where), validate_default=False),
    ]


#: Generator backends: a class with ``Settings``, ``capabilities`` and ``from_config(config)``.
backends: Registry[Any] = Registry("generator backend", "backends", ("cda.generate.backends",))
#: Filter checks: see :class:`cda.filter.checks.FilterCheck`.
checks: Registry[Any] = Registry(
    "check", "checks", tuple(f"cda.filter.{m}" for m in ("logic", "minimality", "words", "duplicate", "label", "fluency",
                                                  "entity_checks", "part_of_speech", "sentences"))
)
#: Edit strategies: see :class:`cda.edit.strategies.EditStrategy`.
edit_strategies: Registry[Any] = Registry("edit strategy", "edit_strategies", ("cda.edit.strategies", "cda.edit.entity_swap", "cda.edit.lexicon"))
#: Executors (where the stages run): ``local``, ``ray``; see :mod:`cda.executors`.
executors: Registry[Any] = Registry("executor", "executors", ("cda.executors.local", "cda.executors.ray_data"))
#: Attribution methods: see :class:`cda.explain.methods.AttributionMethod`.
attributions: Registry[Any] = Registry("attribution method", "attributions", ("cda.explain.methods",))
