"""One process toolkit for the whole harness: is a pid alive, stop pids, wait for a condition.

Every wait in the code goes through ``wait_until`` (a probe polled with a growing
interval, optionally required to hold for a while), every stop through
``terminate`` (SIGTERM, a grace period, SIGKILL), which returns the pids that
survived even SIGKILL so that teardown can report them instead of hiding them.
A zombie counts as dead: it holds no resources but its pid.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def alive(pid: int | None) -> bool:
    """True while ``pid`` runs (a zombie, a reused-for-nothing pid: False)."""
    if not pid or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def signal_pid(pid: int, sig: int) -> bool:
    """Send ``sig``; False when the process is already gone."""
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (read from /proc, no process spawned)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d.name))
    return out


def terminate(pids: Iterable[int], grace: float = 2.0, *, sig: int = signal.SIGTERM) -> list[int]:
    """Stop every pid: ``sig`` (SIGTERM), wait up to ``grace`` seconds, then SIGKILL.

    Returns the pids still alive after SIGKILL and another second (normally none:
    those are what teardown must report).
    """
    todo = [p for p in dict.fromkeys(pids) if alive(p)]
    for pid in todo:
        signal_pid(pid, sig)
    left = wait_until(lambda: [p for p in todo if alive(p)] or None, grace, negate=True).value or []
    if not left:
        return []
    for pid in left:
        signal_pid(pid, signal.SIGKILL)
    return wait_until(lambda: [p for p in left if alive(p)] or None, 1.0, negate=True).value or []


@dataclass
class Waited(Generic[T]):
    ok: bool
    seconds: float
    value: T | None  # the probe's last answer
    error: BaseException | None = None  # the probe's last exception, if it raised


def wait_until(
    probe: Callable[[], Any],
    timeout: float,
    *,
    hold: float = 0.0,
    interval: float = 0.01,
    max_interval: float = 0.25,
    negate: bool = False,
    catch: tuple[type[BaseException], ...] = (),
    abort: Callable[[], BaseException | None] | None = None,
) -> Waited[Any]:
    """Poll ``probe`` until it returns something true (false, with ``negate``) and has
    for ``hold`` seconds in a row, or ``timeout`` passes.

    ``catch``: exceptions of the probe that mean "not yet" (a daemon not answering).
    ``abort``: called each round; an exception it returns is raised at once (the daemon
    being waited for has exited: no point waiting out the timeout).
    """
    start = time.monotonic()
    deadline = start + timeout
    since: float | None = None
    value: Any = None
    error: BaseException | None = None
    delay = interval
    while True:
        try:
            value = probe()
            error = None
            ok = (not value) if negate else bool(value)
        except catch as exc:
            ok, error = False, exc
        now = time.monotonic()
        if ok:
            since = now if since is None else since
            if now - since >= hold:
                return Waited(True, now - start, value)
        else:
            since = None
        if abort is not None:
            stop = abort()
            if stop is not None:
                raise stop
        if now >= deadline + (hold if since is not None else 0):
            return Waited(False, now - start, value, error)
        time.sleep(min(delay, max(0.0, deadline + hold - now)) or interval)
        delay = min(delay * 1.5, max_interval)
