"""What every daemon wrapper shares: templates, config checks, readiness, stopping.

A service is one daemon on one node, made from the plan (``from_plan``: every setting
goes to the constructor, never set afterwards) and taken through the phases
render -> check -> start -> wait_ready -> stop.  ``context()`` is the pure part: what
its templates are rendered from, so template tests use the real thing.  Which
service runs where, and in which order, is ``lab.services.registry``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jinja2

from lab.errors import ServiceError
from lab.model.nodeplan import NodePlan
from lab.model.plan import Plan
from lab.runtime import proc
from lab.runtime.node import LabNode, netns
from lab.runtime.rundir import RunDir
from lab.services.keys import LabKeys
from lab.services.pki import LabCA

TEMPLATES = Path(__file__).parent / "templates"
#: the mail node as a readable artefact (also at the top of the repository, a link to this)
MAILNODE = Path(__file__).resolve().parents[1] / "mailnode"

_envs: dict[Path, jinja2.Environment] = {}


def render_template(directory: Path, name: str, **ctx: Any) -> str:
    env = _envs.get(directory)
    if env is None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
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
    #: DKIM, TLS and DNSSEC keys of this run, made on first use (lab.services.keys)
    keys: LabKeys = field(default_factory=LabKeys)


@dataclass
class Rendered:
    path: Path  # where the daemon reads it (root-side path)
    shown_as: str  # the path the daemon sees inside its node


@dataclass(frozen=True)
class Template:
    """One file a service renders: which template, from what, to where."""

    directory: Path
    name: str
    context: dict[str, Any]
    path: Path  # root-side path the file is written to
    shown_as: str | None = None
    mode: int = 0o644

    def text(self) -> str:
        return render_template(self.directory, self.name, **self.context)


@dataclass
class Service:
    """One daemon on one node.  Subclasses set ``daemon``, ``roles``, ``stage`` and the phases."""

    node: LabNode
    dep: Deployment
    rendered: list[Rendered] = field(default_factory=list)
    pid: int | None = None
    started_at: float | None = None
    ready_after: float | None = None
    child: subprocess.Popen[bytes] | None = field(default=None, repr=False)  # when spawn() started it

    daemon: ClassVar[str] = "daemon"
    #: the node roles this service runs on (the registry asks ``applies``)
    roles: ClassVar[tuple[str, ...]] = ()
    #: bring-up order: services of a lower stage are ready before a higher stage starts
    stage: ClassVar[int] = 50
    #: waited for only before this stage (or at the end of the bring-up): a slow starter
    #: loads while later stages come up; None: ready before the next stage starts
    ready_by: ClassVar[int | None] = None
    #: how long readiness may take (seconds)
    ready_timeout: ClassVar[float] = 20.0
    #: SIGTERM goes to the daemon's own processes too, at once: a master told alone waits
    #: for them (Dovecot's a whole second) or may leave a straggler
    stop_children: ClassVar[bool] = False
    #: the programs it needs on the machine (checked before anything is built)
    commands: ClassVar[tuple[str, ...]] = ()

    # -- made from the plan ----------------------------------------------------------
    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        """Does this service run on this node?  (Default: its role.)"""
        return node.role in cls.roles

    @classmethod
    def from_plan(cls, node: LabNode, dep: Deployment) -> "Service":
        """The service for this node, with every setting the plan gives it."""
        return cls(node, dep)

    @classmethod
    def private_dirs(cls, ndir: Path) -> list[Any]:
        """Folders of the node this daemon needs for itself, as Mininet privateDirs entries
        ((mount point, source folder) or a tmpfs mount point); created here, before the
        node exists."""
        return []

    def templates(self) -> list[Template]:
        """Every file this service renders and what from: pure (no I/O), so template
        tests render exactly what the daemon gets."""
        return []

    # -- the phases, in order ------------------------------------------------------
    def render(self) -> None:
        """Write every template; services with more to prepare extend this."""
        for t in self.templates():
            self.write(t.path, t.text(), t.shown_as, mode=t.mode)

    def check(self) -> None:
        """Run the daemon's own config check; raise ServiceError quoting its output."""

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self, timeout: float) -> None:
        raise NotImplementedError

    def stop(self) -> list[int]:
        """Stop the daemon (with its own processes when ``stop_children``); return the pids
        that survived (teardown reports them)."""
        pids = [self.pid] if self.pid else []
        if self.pid and self.stop_children:
            pids += proc.children(self.pid)
        left = proc.terminate(pids, grace=5.0)
        if self.child is not None:
            self.child.poll()  # reap it: it is the lab's child
        return left

    def spawn(self, args: list[str], env: dict[str, str] | None = None) -> int:
        """Start the daemon in the foreground inside its node, as the lab's own child (its
        pid is the daemon's: no daemonizing parent to wait on), output to its start log."""
        self.child = self.node.spawn(args, env=env, log=self.start_log())
        self.pid = self.child.pid
        return self.pid

    def reload(self) -> None:
        """Read config and certificate again without a restart (after a certificate
        renewal); daemons with nothing to reload do nothing."""

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
        for lf in [log] if log else self.logs():
            t = log_tail(lf)
            if t:
                tail = (tail + "\n" if tail else "") + f"[{lf.name}]\n{t}"
        return ServiceError(self.node.name, self.daemon, message, log_tail=tail, hint=hint)

    def start_log(self) -> Path:
        """Where the output of this daemon's start command goes."""
        return self.node.dir / f"{self.daemon}-start.log"

    def run_checked(
        self, args: list[str], what: str, inside: bool = True, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        # a check outside the nodes runs in a network namespace of its own, with no
        # interface up: a tool that looks a name up (named-checkzone does, for an NS
        # out of its zone) must never reach the machine's own resolver
        r = (
            self.node.run(args, **kw)
            if inside
            else subprocess.run(
                ["unshare", "--net", "--", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw
            )
        )
        if r.returncode != 0:
            raise self.fail(f"{what} failed (exit {r.returncode})", extra=(r.stdout + r.stderr).strip()[-3000:])
        return r

    def poll(
        self,
        probe: Callable[[], bool],
        timeout: float,
        what: str,
        hint: str | None = None,
        exited: Callable[[], bool] | None = None,
    ) -> None:
        """Wait until ``probe`` is true.  A daemon that has exited fails at once, with its log
        (``exited`` says so; by default: its pid is known and no longer alive)."""
        start = self.started_at or time.monotonic()

        def gone() -> BaseException | None:
            dead = exited() if exited is not None else bool(self.pid) and not proc.alive(self.pid)
            return self.fail(f"exited before it {what}", hint=hint) if dead else None

        waited = proc.wait_until(probe, timeout, catch=(Exception,), abort=gone)
        if not waited.ok:
            detail = f" (last probe error: {waited.error})" if waited.error else ""
            raise self.fail(f"did not {what} within {timeout:g} s{detail}", hint=hint)
        self.ready_after = time.monotonic() - start

    def listens(self, ip: str, port: int) -> bool:
        """One readiness probe of a daemon that says nothing first: a TCP connect inside the node."""
        with netns(self.node.pid):
            socket.create_connection((ip, port), timeout=1).close()
        return True

    def greets(self, ip: str, port: int, expect: bytes, say: bytes = b"") -> bool:
        """One readiness probe of a TCP daemon inside the node: connect, say ``say`` if the
        protocol waits for the client, and see whether the first answer starts with ``expect``."""
        with netns(self.node.pid):
            s = socket.create_connection((ip, port), timeout=1)
        with s:
            s.settimeout(2)
            if say:
                s.sendall(say)
            return s.recv(512).startswith(expect)


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
    """The pid a daemon wrote into ``path`` (waiting up to ``timeout`` for it to appear)."""

    def read() -> int | None:
        try:
            text = path.read_text().strip()
            return int(text.split()[0]) if text else None
        except (OSError, ValueError):
            return None

    return proc.wait_until(read, timeout).value if timeout else read()


def command_version(args: list[str], pick: Callable[[str], str] = lambda s: s.strip().splitlines()[0]) -> str:
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
        return pick(r.stdout + r.stderr)
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"
