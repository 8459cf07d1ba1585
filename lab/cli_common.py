"""What the `lab` commands share: progress lines, --param, the root check, exit codes."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from lab.errors import EnvironmentProblem, InputError, Problem

REPO = Path(__file__).resolve().parents[1]

EXIT_CODES = """exit codes:
  0  every step passed
  1  a step or assertion failed
  2  bad input: a topology or scenario file is malformed (nothing was built)
  3  environment problem: not root, or a package is missing (run scripts/setup.sh)
  4  the lab could not be built, or a daemon failed its check or never answered
  130 interrupted (the lab was torn down)"""


def _progress(enabled: bool) -> Any:
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
        width = max(20, __import__("shutil").get_terminal_size().columns - 1)
        line = f"{stamp} {msg}"
        if lasting:
            colour = "\033[32m" if "PASSED" in msg else "\033[31m" if ("FAILED" in msg or "ERROR" in msg) else ""
            print(f"\r\033[K{colour}{line}\033[0m", file=sys.stderr, flush=True)
            state["transient"] = False
        else:
            print(f"\r\033[K{line[:width]}", end="", file=sys.stderr, flush=True)
            state["transient"] = True

    return say


def _params(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            raise InputError(problems=[Problem("--param", None, None, item, "expected NAME=NUMBER, e.g. depth=3")])
        out[key] = int(value)
    return out


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise_env(f"'{what}' needs root (network namespaces, bridges, mounts)")


def raise_env(msg: str) -> None:

    raise EnvironmentProblem(msg, hint="run it with sudo, or as root")
