"""What every baseline script shares: reading the sets, memory figures, result digests.

Standard library only, because it runs in the baselines' venv as well as the project's.
"""

from __future__ import annotations

import hashlib
import resource
from collections.abc import Iterable


def read_items(path: str) -> list[str]:
    """One item per line (ASCII, no commas or quotes), as ``scripts/bench/psi.py`` writes."""
    with open(path, encoding="ascii") as handle:
        return handle.read().splitlines()


def intersection_digest(items: Iterable[str]) -> str:
    """SHA-256 of the sorted, distinct items joined by newlines: equal sets, equal digest."""
    return hashlib.sha256("\n".join(sorted(set(items))).encode("ascii")).hexdigest()


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark in MiB.

    ``VmHWM`` rather than ``ru_maxrss``: Linux carries ``ru_maxrss`` across ``fork`` and
    ``execve``, so a child started by a large parent would report the parent's peak.
    ``VmHWM`` belongs to the process's own address space, fresh at ``execve``.
    """
    return high_water_rss_mb() or round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )


def reset_peak_rss() -> None:
    """Reset this process's ``VmHWM`` to its current RSS (Linux ``clear_refs``), so the
    peak read later is the run's; where not allowed, the peak includes the loading."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass


def private_mb(pid: int | str = "self") -> float:
    """Memory only this process maps (USS: private clean + dirty, ``smaps_rollup``)."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1])
    except OSError:
        return 0.0
    return round(total / 1024, 1)


def current_rss_mb(pid: int | str = "self") -> float:
    """A process's resident set now, from ``/proc/PID/status`` (0 where unreadable)."""
    return _status_mb(pid, "VmRSS")


def high_water_rss_mb(pid: int | str = "self") -> float:
    """A live process's resident-set high-water mark (``VmHWM``; 0 where unreadable)."""
    return _status_mb(pid, "VmHWM")


def _status_mb(pid: int | str, field: str) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0
