"""What this machine's CPU is, for caches and measurements that hold for one CPU model only.

This module imports only the standard library.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

__all__ = ["cpu_name"]


@functools.cache
def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else the platform's processor or machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
