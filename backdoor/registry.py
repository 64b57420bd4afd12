"""One registry type for every method family: datasets, models, recipes, triggers, strategies, regularizers,
fine-tuning methods and detectors.

In the manner of timm's ``register_model`` / ``list_models``: a family is a :class:`Registry`; a module adds
one method to it with a decorator, and the entry carries the method's facts, what the pipeline must know of it
without building it (a detector's kind, whether a trigger is a patch, the source it follows)::

    TRIGGERS = Registry("trigger", section="triggers", built_in=("shape", "seed", "size", "location"),
                        facts={"patch": False})

    @TRIGGERS.register("square", patch=True, reference="Gu et al. 2017 (BadNets)")
    def square(shape, *, seed, size, location, value: int = 255): ...

A factory's settings are its keyword-only parameters other than the ``built_in`` ones its caller passes, and a
setting's default lives in one place: the factory's signature. ``params.yaml``'s method sections and
``docs/parameters.md`` are generated from it (``tools/parameters_doc.py``). Adding a method of any family is
one module and one import line in its family's ``__init__.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from .errors import ConfigError, choices_error
from .validation import check_choice, check_keys, check_number

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered method: its name, what builds it (a factory, or a dataset's spec), the source it follows,
    and its facts (read as attributes: ``DETECTORS.get("strip").kind``)."""

    name: str
    factory: T
    reference: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        facts = self.__dict__.get("facts", {})
        if key in facts:
            return facts[key]
        raise AttributeError(f"{self.__dict__.get('name')!r} has no fact {key!r}")


class Registry(Generic[T]):
    """A family of named methods.

    ``param``: how a choice of this family is named in error messages (``trigger``); ``section``: the
    params.yaml section that holds each method's settings (``triggers``), if any; ``built_in``: the
    keyword-only parameters the caller passes every factory (not settings); ``facts``: the facts every entry
    has, with their defaults (``register`` refuses others, so a typo cannot pass as a fact); ``fact_choices``: the
    values a fact may take, where they are few (a detector's kind)."""

    def __init__(
        self,
        param: str,
        *,
        section: str | None = None,
        built_in: Iterable[str] = (),
        facts: Mapping[str, Any] | None = None,
        fact_choices: Mapping[str, Iterable[Any]] | None = None,
    ):
        self.param, self.section, self.built_in = param, section, tuple(built_in)
        self.fact_defaults = dict(facts or {})
        self.fact_choices = {key: tuple(values) for key, values in (fact_choices or {}).items()}
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, reference: str = "", **facts: Any) -> Callable[[T], T]:
        """Decorator: add the decorated factory under ``name`` with its facts."""

        def add(factory: T) -> T:
            self.add(name, factory, reference=reference, **facts)
            return factory

        return add

    def add(self, name: str, factory: T, *, reference: str = "", **facts: Any) -> T:
        unknown = sorted(set(facts) - set(self.fact_defaults))
        if unknown:
            raise ValueError(
                f"{self.param} {name!r}: unknown fact(s) {', '.join(unknown)}; a {self.param} has "
                f"{', '.join(sorted(self.fact_defaults)) or 'none'}"
            )
        for key, value in facts.items():
            if key in self.fact_choices and value not in self.fact_choices[key]:
                raise ValueError(
                    f"{self.param} {name!r}: fact {key} must be one of {self.fact_choices[key]}, got {value!r}"
                )
        if name in self._entries and self._entries[name].factory is not factory:
            raise ValueError(f"{self.param} {name!r} is registered twice")
        self._entries[name] = Entry(name, factory, reference, MappingProxyType({**self.fact_defaults, **facts}))
        return factory

    def remove(self, name: str) -> None:
        """Take an entry out again (tests that register a dummy method)."""
        self._entries.pop(name, None)

    # ------------------------------------------------------------ lookup

    def names(self, **facts: Any) -> list[str]:
        """The registered names, sorted; with ``facts``, those whose facts have these values."""
        return sorted(
            name
            for name, entry in self._entries.items()
            if all(entry.facts.get(key) == value for key, value in facts.items())
        )

    def get(self, name: Any, where: str | None = None) -> Entry[T]:
        """The entry, or a ConfigError naming ``where`` (default: the family's param) and the valid choices."""
        if not isinstance(name, str) or name not in self._entries:
            raise choices_error(where or self.param, name, self.names())
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    # ------------------------------------------------------------ settings

    def setting_names(self, name: str) -> list[str]:
        """A method's settings: its factory's keyword-only parameters, less the built-in ones."""
        params = inspect.signature(self.get(name).factory).parameters.values()
        return sorted(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in self.built_in)

    def defaults(self, name: str) -> dict[str, Any]:
        """A method's settings with their defaults (the one place a default lives)."""
        params = inspect.signature(self.get(name).factory).parameters
        return {key: params[key].default for key in self.setting_names(name)}

    def where(self, name: str, key: str | None = None) -> str:
        """How params.yaml spells a method's settings block, or one setting: ``triggers.blend.alpha``."""
        base = f"{self.section or self.param}.{name}"
        return base if key is None else f"{base}.{key}"

    def check_keys(self, name: str, settings: Mapping[str, Any], extra: Iterable[str] = ()) -> None:
        """Refuse a setting the method does not take, naming ``<section>.<name>.<key>`` and the valid keys."""
        check_keys(self.where(name), settings, [*self.setting_names(name), *extra])

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Check the settings in ``kwargs`` (all but the built-in ones) and call the factory."""
        self.check_keys(name, {k: v for k, v in kwargs.items() if k not in self.built_in})
        return self.get(name).factory(*args, **kwargs)

    # ------------------------------------------------------------ helpers for method modules

    def number(self, name: str, key: str, value: Any, **bounds: Any) -> float | int:
        """A setting checked as a finite number in an interval (``backdoor.validation.check_number``)."""
        return check_number(self.where(name, key), value, **bounds)

    def choice(self, name: str, key: str, value: Any, choices: Iterable[str]) -> str:
        return check_choice(self.where(name, key), value, choices)

    def flag(self, name: str, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where(name, key)}: must be true or false, got {value!r}")
        return value
