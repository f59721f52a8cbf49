"""Registered model families. Importing this package registers every family and preset."""

from .registry import UnknownModelError, create_model, get_entry, list_models, register_model
from . import unet  # noqa: F401  (registers unet_*)

__all__ = ["UnknownModelError", "create_model", "get_entry", "list_models", "register_model"]
