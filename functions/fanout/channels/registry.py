"""Channels register themselves with their name and the settings they need (as ElastAlert 2's
alerters declare their required options): ``@register("slack", requires=(...))`` on the class.

A route names channels; ``build_channel`` gives the registered channel when every setting it
requires is set, and otherwise the log channel standing in for it (so an unconfigured channel is
visible in the logs and the outbox, never silently dropped). Adding a channel is one module in this
package with a registered class: nothing else lists channels.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from functions.fanout.channels.base import Channel
    from functions.fanout.settings import FanoutSettings

C = TypeVar("C")


@dataclass(frozen=True)
class ChannelKind:
    name: str
    requires: tuple[str, ...]  # FanoutSettings fields that must all be set
    factory: Callable[[FanoutSettings], Any]


_KINDS: dict[str, ChannelKind] = {}
_loaded = False


def register(name: str, *, requires: tuple[str, ...]) -> Callable[[type[C]], type[C]]:
    def add(cls: type[C]) -> type[C]:
        _KINDS[name] = ChannelKind(name, requires, cls)
        return cls

    return add


def kinds() -> dict[str, ChannelKind]:
    """Every registered channel (each module of this package imported once, so each registers)."""
    global _loaded
    if not _loaded:
        package = importlib.import_module(__package__ or "functions.fanout.channels")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
        _loaded = True
    return dict(_KINDS)


def unset_variables(settings: FanoutSettings, names: Iterable[str]) -> list[str]:
    """The environment variables of the settings ``names`` (``FanoutSettings`` fields) left unset."""
    fields = type(settings).model_fields
    return [str(fields[f].validation_alias or f.upper()) for f in names if not getattr(settings, f)]


def missing_settings(name: str, settings: FanoutSettings) -> list[str]:
    """The environment variables of the settings channel ``name`` needs that are unset."""
    return unset_variables(settings, kinds()[name].requires)


def configured(name: str, settings: FanoutSettings) -> bool:
    return name in kinds() and not missing_settings(name, settings)


def require(name: str, settings: FanoutSettings) -> None:
    """Refuse to build channel ``name`` without its settings, naming the variables."""
    missing = missing_settings(name, settings)
    if missing:
        raise ValueError(f"{name} needs {' and '.join(missing)}")


def build_channel(name: str, settings: FanoutSettings) -> Channel:
    """The channel called ``name``, or the log channel standing in when it is not configured."""
    if configured(name, settings):
        channel: Channel = kinds()[name].factory(settings)
        return channel
    from functions.fanout.channels.log import LogChannel

    return LogChannel(settings.outbox_dir, instead_of=None if name == "log" else name)
