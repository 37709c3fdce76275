"""A process's memory as Linux tells it (`/proc/PID/status`), for tests that bound what input costs."""

from __future__ import annotations

from pathlib import Path


def status_kb(pid: int | str, field: str) -> int:
    """`VmRSS` (resident now) or `VmHWM` (the peak since start or the last `reset_peak`), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def rss_mb(pid: int | str = "self") -> float:
    return status_kb(pid, "VmRSS") / 1024


def peak_mb(pid: int | str = "self") -> float:
    return status_kb(pid, "VmHWM") / 1024


def reset_peak(pid: int | str = "self") -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux: clear_refs 5); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False
