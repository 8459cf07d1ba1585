"""Progress lines of the `lab` command on stderr (split out of lab/cli.py)."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any


def progress(enabled: bool) -> Any:
    """Progress on stderr.  On a terminal, what is being built, started or waited for
    is one line rewritten in place and results stay; elsewhere (CI, pipes) every
    message is a plain timestamped line."""
    t0 = time.monotonic()
    tty = sys.stderr.isatty()
    state = {"transient": False}

    def say(msg: str) -> None:
        if not enabled:
            return
        stamp = f"[{time.monotonic() - t0:6.2f}s]"
        if not tty:
            print(f"{stamp} {msg}", file=sys.stderr, flush=True)
            return
        lasting = msg.lstrip().startswith(("PASSED", "FAILED", "ERROR", "lab ready", "capturing")) or msg.startswith(
            "claimed"
        )
        width = max(20, shutil.get_terminal_size().columns - 1)
        line = f"{stamp} {msg}"
        if lasting:
            colour = "\033[32m" if "PASSED" in msg else "\033[31m" if ("FAILED" in msg or "ERROR" in msg) else ""
            print(f"\r\033[K{colour}{line}\033[0m", file=sys.stderr, flush=True)
            state["transient"] = False
        else:
            print(f"\r\033[K{line[:width]}", end="", file=sys.stderr, flush=True)
            state["transient"] = True

    return say
