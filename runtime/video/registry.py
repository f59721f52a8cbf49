"""The ordered registries that :func:`~runtime.video.open_source` and :func:`~runtime.video.open_sink` consult.

A kind is a class with two class methods: ``matches(spec) -> bool``, a cheap test of the spec alone (its
form, whether the path exists), and ``from_spec(spec, options)``, which opens it (raising a one-line
:class:`~runtime.core.errors.UserError` when it cannot). Kinds are tried in registration order and the
first that matches opens the spec, so a more specific kind goes before a more general one::

    register_source("camera", CameraSource)   # "0", "/dev/video0"
    register_source("url", UrlSource)         # anything with "scheme://"

The built-in kinds register themselves at the end of :mod:`.sources` and :mod:`.sinks`.
"""

from __future__ import annotations

__all__ = ["Registry", "SOURCE_KINDS", "SINK_KINDS", "register_source", "register_sink"]


class Registry:
    """Named kinds, tried in order; ``match(spec)`` gives the first whose ``matches(spec)`` is true."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._kinds: list[tuple[str, type]] = []

    def register(self, name: str, cls: type, *, before: str | None = None) -> type:
        """Add ``cls`` as kind ``name``, last or just before kind ``before``; returns ``cls``.

        A kind is declared once: registering a name again is a ValueError (``unregister`` it first).
        """
        for method in ("matches", "from_spec"):
            if not callable(getattr(cls, method, None)):
                raise TypeError(f"a {self.what} kind needs a {method}() class method; {cls.__name__} has none")
        names = self.names()
        if before is not None and before not in names:
            raise ValueError(f"no {self.what} kind {before!r} to register {name!r} before; kinds: {names}")
        if name in names:
            raise ValueError(f"{self.what} kind {name!r} is already registered")
        at = names.index(before) if before is not None else len(self._kinds)
        self._kinds.insert(at, (name, cls))
        return cls

    def unregister(self, name: str) -> None:
        """Remove kind ``name`` (KeyError when there is none)."""
        if name not in self.names():
            raise KeyError(f"no {self.what} kind {name!r}")
        self._kinds = [(n, c) for n, c in self._kinds if n != name]

    def names(self) -> tuple[str, ...]:
        """The kinds, in the order they are tried."""
        return tuple(name for name, _ in self._kinds)

    def get(self, name: str) -> type:
        """The class registered as ``name`` (KeyError when there is none)."""
        for n, cls in self._kinds:
            if n == name:
                return cls
        raise KeyError(f"no {self.what} kind {name!r}")

    def match(self, spec) -> tuple[str, type] | None:
        """(name, class) of the first kind that matches ``spec``; None when none does."""
        for name, cls in list(self._kinds):
            if cls.matches(spec):
                return name, cls
        return None


SOURCE_KINDS = Registry("source")
"""Source kinds, tried in the order of ``SOURCE_KINDS.names()``: ``matches(spec: str) -> bool`` and
``from_spec(spec: str, options: SourceOptions) -> Source``."""

SINK_KINDS = Registry("sink")
"""Sink kinds, tried in the order of ``SINK_KINDS.names()``: ``matches(path: Path | None) -> bool`` and
``from_spec(path, options: SinkOptions) -> Sink``."""


def register_source(kind: str, cls: type, *, before: str | None = None) -> type:
    """Register a source kind for :func:`~runtime.video.open_source` (see the module docstring)."""
    return SOURCE_KINDS.register(kind, cls, before=before)


def register_sink(kind: str, cls: type, *, before: str | None = None) -> type:
    """Register a sink kind for :func:`~runtime.video.open_sink` (see the module docstring)."""
    return SINK_KINDS.register(kind, cls, before=before)

