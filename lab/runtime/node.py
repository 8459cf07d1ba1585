"""A handle on one lab node: run programs inside its namespaces, find its processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.model.nodeplan import NodePlan
from lab.runtime import proc


class LabNode:
    """One Mininet host seen by services and steps.

    Commands run through ``nsenter`` into the host's network, mount and UTS namespaces
    rather than through Mininet's interactive shell, so they can run concurrently,
    have their own exit codes, and never desynchronise the shell.
    """

    def __init__(self, plan: NodePlan, mn_host: Any, dir: Path, prefix: str):
        self.plan = plan
        self.name = plan.name
        self.mn = mn_host
        self.dir = dir
        self.prefix = prefix
        self.intf = "eth0"
        self.ip: str | None = plan.ip
        self.mac: str | None = None

    @property
    def pid(self) -> int:
        return int(self.mn.pid)

    def argv(self, args: Sequence[str]) -> list[str]:
        return enter(self.pid, args)

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = False,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        output: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node and wait for it.

        ``output``: send stdout and stderr to this file instead of pipes.  Needed for
        commands that start daemons: a forked daemon inherits the pipes and keeps
        them open, so reading them to the end would wait for the daemon to exit.
        """
        full_env = None if env is None else {**os.environ, **env}
        try:
            if output is not None:
                with open(output, "a+") as fh:
                    start = fh.tell()
                    proc = subprocess.run(
                        self.argv(args),
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                        text=True,
                        timeout=timeout,
                        env=full_env,
                        stdin=subprocess.DEVNULL,
                    )
                    fh.seek(start)
                    proc.stdout, proc.stderr = fh.read(), ""
            else:
                proc = subprocess.run(
                    self.argv(args),
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    env=full_env,
                    input=input,
                    stdin=None if input is not None else subprocess.DEVNULL,
                )
        except subprocess.TimeoutExpired:
            from lab.errors import BuildError

            raise BuildError(f"{self.name}: '{' '.join(map(str, args))}' did not finish within {timeout:g} s") from None
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, list(args), proc.stdout, proc.stderr)
        return proc

    def spawn(
        self, args: Sequence[str], *, env: Mapping[str, str] | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a long-running program inside the node, in its own session."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            return subprocess.Popen(
                self.argv(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else {**os.environ, **env},
                start_new_session=True,
            )
        finally:
            if log:
                out.close()  # type: ignore[union-attr]

    def netns_id(self) -> str:
        return os.readlink(f"/proc/{self.pid}/ns/net")

    def pids(self) -> list[int]:
        """PIDs whose network namespace is this node's (the shell excluded)."""
        return pids_in_netns(self.netns_id(), exclude={self.pid})

    def kill_all(self, grace: float = 2.0) -> list[int]:
        """Stop every process left in this node's namespace: TERM, then KILL.  Returns survivors."""
        return proc.terminate(self.pids(), grace)


def enter(pid: int, args: Sequence[Any]) -> list[str]:
    """The command line that runs ``args`` inside a node: its network, mount and UTS
    namespaces (nsenter execs, so the pid is the program's; a missing program exits 127)."""
    return ["nsenter", "-t", str(pid), "-n", "-m", "-u", "--", *map(str, args)]


def pids_in_netns(ns: str, exclude: set[int] | None = None) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if exclude and pid in exclude:
            continue
        try:
            if os.readlink(f"/proc/{pid}/ns/net") == ns:
                out.append(pid)
        except OSError:
            continue
    return out


_libc = None
CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class netns:
    """Run the calling thread inside a node's network namespace for a moment.

    Sockets opened inside stay in that namespace after the block; name resolution
    through the system resolver still reads the root's /etc/resolv.conf, so use
    addresses (or dnspython against a chosen server) inside the block.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self._home = -1

    def __enter__(self) -> "netns":
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            _setns(self._home)
        finally:
            os.close(self._home)
