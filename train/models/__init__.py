"""Registered model families. Importing this package registers every family and preset."""

from .registry import UnknownModelError, create_model, get_entry, list_models, register_model
from . import lowlight, unet  # noqa: F401  (register lowlight_* and unet_*)

__all__ = ["UnknownModelError", "create_model", "get_entry", "list_models", "register_model"]
