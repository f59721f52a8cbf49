"""The model registry. Importing this package imports every family package under ``train/`` (each registers
its presets and its ``Family``), so ``create_model`` and ``list_models`` see them all."""

from .registry import UnknownModelError, create_model, get_entry, list_models, register_model
from ..families import load_families

load_families()

__all__ = ["UnknownModelError", "create_model", "get_entry", "list_models", "register_model"]
