"""What every daemon wrapper shares: templates, config checks, readiness, stopping."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jinja2

from lab.errors import ServiceError
from lab.model.plan import Plan
from lab.runtime.node import LabNode
from lab.runtime.rundir import RunDir
from lab.services.pki import LabCA

TEMPLATES = Path(__file__).parent / "templates"
#: the mail node as a readable artefact (also at the top of the repository, a link to this)
MAILNODE = Path(__file__).resolve().parents[1] / "mailnode"

_envs: dict[Path, jinja2.Environment] = {}


def render_template(directory: Path, name: str, **ctx: Any) -> str:
    env = _envs.get(directory)
    if env is None:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(directory)),
                                 undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                 trim_blocks=True, lstrip_blocks=True, autoescape=False)
        _envs[directory] = env
    return env.get_template(name).render(**ctx)


@dataclass
class Deployment:
    """What services of one run share."""

    plan: Plan
    run: RunDir
    ca: LabCA
    nodes: dict[str, LabNode]
    fast_retry: bool = True


@dataclass
class Rendered:
    path: Path          # where the daemon reads it (root-side path)
    shown_as: str       # the path the daemon sees inside its node


@dataclass
class Service:
    """One daemon on one node.  Subclasses set ``daemon`` and implement the phases."""

    node: LabNode
    dep: Deployment
    rendered: list[Rendered] = field(default_factory=list)
    pid: int | None = None
    started_at: float | None = None
    ready_after: float | None = None

    daemon: ClassVar[str] = "daemon"

    # -- the phases, in order ------------------------------------------------------
    def render(self) -> None:
        raise NotImplementedError

    def check(self) -> None:
        """Run the daemon's own config check; raise ServiceError quoting its output."""

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self, timeout: float) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    # -- what reports read ---------------------------------------------------------
    def logs(self) -> list[Path]:
        return []

    def version(self) -> str:
        return ""

    # -- helpers -------------------------------------------------------------------
    def write(self, path: Path, text: str, shown_as: str | None = None, mode: int = 0o644) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, mode)
        # Postfix waits (up to 1.5 s, 0.3 s at a time) for a table or main.cf modified
        # within the last second to "settle": date rendered files a little back.
        past = time.time() - 5
        os.utime(path, (past, past))
        self.rendered.append(Rendered(path, shown_as or str(path)))
        return path

    def fail(self, message: str, hint: str | None = None, log: Path | None = None, extra: str = "") -> ServiceError:
        tail = extra
        for lf in ([log] if log else self.logs()):
            t = log_tail(lf)
            if t:
                tail = (tail + "\n" if tail else "") + f"[{lf.name}]\n{t}"
        return ServiceError(self.node.name, self.daemon, message, log_tail=tail, hint=hint)

    def start_log(self) -> Path:
        """Where the output of this daemon's start command goes."""
        return self.node.dir / f"{self.daemon}-start.log"

    def run_checked(self, args: list[str], what: str, inside: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        r = self.node.run(args, **kw) if inside else subprocess.run(args, capture_output=True, text=True,
                                                                       stdin=subprocess.DEVNULL, **kw)
        if r.returncode != 0:
            raise self.fail(f"{what} failed (exit {r.returncode})", extra=(r.stdout + r.stderr).strip()[-3000:])
        return r

    def poll(self, probe: Callable[[], bool], timeout: float, what: str, hint: str | None = None) -> None:
        start = self.started_at or time.monotonic()
        deadline = time.monotonic() + timeout
        delay = 0.01
        last: Exception | None = None
        while True:
            try:
                if probe():
                    self.ready_after = time.monotonic() - start
                    return
            except Exception as exc:  # probes fail until the daemon answers
                last = exc
            if self.pid and not process_alive(self.pid):
                raise self.fail(f"exited before it {what}", hint=hint)
            if time.monotonic() > deadline:
                detail = f" (last probe error: {last})" if last else ""
                raise self.fail(f"did not {what} within {timeout:g} s{detail}", hint=hint)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def read_pid(path: Path, timeout: float = 0) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = path.read_text().strip()
            if text:
                return int(text.split()[0])
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int | None, grace: float = 5.0) -> bool:
    """SIGTERM, wait, SIGKILL.  True if the process is gone."""
    if not pid or not process_alive(pid):
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return False


def command_version(args: list[str], pick: Callable[[str], str] = lambda s: s.strip().splitlines()[0]) -> str:
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
        return pick(r.stdout + r.stderr)
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"
