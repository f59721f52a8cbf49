"""Registered model families. Importing this package registers every family and preset."""

from .registry import UnknownModelError, create_model, get_entry, list_models, register_model
from . import ibr, lowlight, relight, sfsnet, unet  # noqa: F401  (importing registers each family's presets)

__all__ = ["UnknownModelError", "create_model", "get_entry", "list_models", "register_model"]
