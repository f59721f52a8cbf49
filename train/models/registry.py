"""Model registry: every family registers its presets here; one factory builds them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from torch import nn

from runtime.core.errors import UserError

__all__ = ["ModelEntry", "UnknownModelError", "register_model", "register_presets", "create_model", "list_models",
           "get_entry", "config_dict", "register_rename", "current_name"]


class UnknownModelError(UserError):
    """Raised when a model name is not in the registry."""


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: a family's preset and the function that builds it."""

    name: str
    family: str
    preset: str
    builder: Callable[..., nn.Module]


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, name: str | None = None):
    """Register a builder function under ``name`` (default: the function's name).

    Names follow ``<family>_<preset>`` (``unet_edge``). Registering a name twice is an error.

    Args:
        fn: a function taking config overrides as keyword arguments and returning a model.
        name: the registered name; defaults to ``fn.__name__``.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered")
        family, sep, preset = key.partition("_")
        if not sep or not family or not preset:
            raise ValueError(f"model name {key!r} must read '<family>_<preset>'")
        _REGISTRY[key] = ModelEntry(key, family, preset, builder)
        return builder

    return decorator(fn) if fn is not None else decorator


def get_entry(name: str) -> ModelEntry:
    """Return the registry entry for ``name``; raise UnknownModelError listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; registered models: {', '.join(list_models()) or 'none'}"
        ) from None


def create_model(name: str, **config) -> nn.Module:
    """Build a registered model, overriding any field of its preset's config.

    Args:
        name: a registered name such as ``unet_edge``.
        **config: config fields that replace the preset's values.

    Returns:
        The model in training mode, with ``family``, ``preset`` and ``config`` attributes set.
    """
    entry = get_entry(name)
    model = entry.builder(**config)
    model.family = entry.family
    model.preset = entry.preset
    return model


def list_models(family: str | None = None) -> list[str]:
    """Sorted registered names, optionally only those of one family."""
    return sorted(k for k, e in _REGISTRY.items() if family is None or e.family == family)


def register_presets(family: str, presets: Mapping[str, tuple[Callable[..., nn.Module], object]]) -> None:
    """Register ``<family>_<preset>`` for every ``preset: (cls, config)``; it builds ``cls(config, **overrides)``."""
    for preset, (cls, config) in presets.items():
        register_model(_preset_builder(family, preset, cls, config))


def _preset_builder(family: str, preset: str, cls: Callable[..., nn.Module],
                    config: object) -> Callable[..., nn.Module]:
    def build(**overrides) -> nn.Module:
        return cls(config, **overrides)

    build.__name__ = f"{family}_{preset}"
    build.__doc__ = f"{cls.__name__}, '{preset}' preset."
    return build


_RENAMED: list[tuple[str, Callable[[dict], bool], str]] = []


def register_rename(old: str, new: str, applies: Callable[[dict], bool]) -> None:
    """Checkpoints saved as ``old`` whose config satisfies ``applies`` are now ``new`` (a preset that
    moved to a versioned name when a new model took its name)."""
    _RENAMED.append((old, applies, new))


def current_name(name: str, config: dict) -> str:
    """The registry name a checkpoint saved as ``name`` with ``config`` has now."""
    for old, applies, new in _RENAMED:
        if name == old and applies(config):
            return new
    return name


def config_dict(config) -> dict:
    """A config dataclass as plain JSON-able values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
