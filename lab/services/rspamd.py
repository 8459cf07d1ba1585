"""rspamd, the milter of a mail node: DKIM signing, SPF/DKIM/DMARC checks, spam and virus verdicts.

One instance per mail node of a topology with ``security.filtering``.  CONFDIR stays
Debian's ``/etc/rspamd``; everything of the node is in its own LOCAL_CONFDIR (the
templates in ``lab/mailnode/rspamd/``), DBDIR, RUNDIR and LOGDIR, and a private
``/var/lib/rspamd`` (rspamd's main process writes ``*.hsmp`` there whatever DBDIR says).

Cold, rspamd spends about 20 s compiling its TLD list and hyperscan databases into
DBDIR.  The first instance on a machine pays that once; its DBDIR is then kept in
``STATE_ROOT/cache/rspamd-db-<version>`` and every later node starts from a copy
(0.8 s), like the Postfix spool cache.  It starts early and is waited for last
(``ready_by``): the other daemons come up while it loads.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from lab.model.mailconfig import LAB_MILTER
from lab.model.plan import MailHost, NodePlan, Plan
from lab.model.zones import DKIM_SELECTOR
from lab.runtime import proc
from lab.runtime.node import netns
from lab.runtime.rundir import STATE_ROOT
from lab.services.base import MAILNODE, Service, Template, command_version, read_pid

MILTER_PORT, CONTROLLER_PORT = 11332, 11334
#: what Postfix is told (main.cf smtpd_milters); the only milter an override may name
MILTER = LAB_MILTER
LOCAL_FILES = (
    "worker-proxy.inc",
    "worker-normal.inc",
    "worker-controller.inc",
    "logging.inc",
    "options.inc",
    "actions.conf",
    "milter_headers.conf",
    "dkim_signing.conf",
    "dmarc.conf",
    "antivirus.conf",
    "fuzzy_check.conf",
)
LOAD_NICE = 10
#: DBDIR files that belong to one instance, not to the warmed cache
PER_INSTANCE = ("rspamd.history", "rspamd_dynamic", "stats.ucl")


class Rspamd(Service):
    daemon = "rspamd"
    roles = ("mail",)
    stage = 22  # after the firewall, before BIND: it loads while the other daemons start
    ready_by: ClassVar[int] = 100  # waited for at the end of the bring-up
    ready_timeout = 120.0  # a cold start (no warmed DBDIR yet) takes 20-40 s
    commands = ("rspamd", "rspamadm")

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        host = plan.mail.get(node.name)
        return node.role == "mail" and host is not None and host.filtering

    @classmethod
    def private_dirs(cls, ndir: Path) -> list[Any]:
        lib = ndir / "lib-rspamd"
        lib.mkdir(parents=True, exist_ok=True)
        _rspamd = pwd.getpwnam("_rspamd")
        os.chown(lib, _rspamd.pw_uid, _rspamd.pw_gid)
        return [("/var/lib/rspamd", str(lib))]

    @property
    def host(self) -> MailHost:
        return self.dep.plan.mail[self.node.name]

    @property
    def home(self) -> Path:
        return self.node.dir / "rspamd"

    def context(self) -> dict[str, Any]:
        return {
            "confdir": str(self.home / "local.d"),
            "logdir": str(self.home / "log"),
            "selector": DKIM_SELECTOR,
            "domains": [
                {"name": d, "key": str(self.home / "dkim" / f"{d}.{DKIM_SELECTOR}.key")} for d in self.host.domains
            ],
        }

    def templates(self) -> list[Template]:
        ctx = self.context()
        return [
            Template(
                MAILNODE / "rspamd", f"{name}.j2", ctx, self.home / "local.d" / name, f"{self.home}/local.d/{name}"
            )
            for name in LOCAL_FILES
        ]

    @property
    def cache(self) -> Path:
        return STATE_ROOT / "cache" / f"rspamd-db-{self.version().split()[-1]}"

    def render(self) -> None:
        _rspamd = pwd.getpwnam("_rspamd")
        for sub in ("run", "db", "log", "dkim"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
            os.chown(self.home / sub, _rspamd.pw_uid, _rspamd.pw_gid)
        super().render()
        for d in self.host.domains:
            key = self.home / "dkim" / f"{d}.{DKIM_SELECTOR}.key"
            key.write_bytes(self.dep.keys.dkim(d).private_pem)
            os.chown(key, 0, _rspamd.pw_gid)
            key.chmod(0o640)
        if self.cache.is_dir():  # a warmed DBDIR: 0.8 s instead of 20 s
            subprocess.run(["cp", "-a", f"{self.cache}/.", str(self.home / "db")], check=True, stdin=subprocess.DEVNULL)

    def check(self) -> None:
        """No ``rspamadm configtest`` here: it loads the whole Lua config (1.2 s of CPU per
        node).  rspamd checks the same config when it starts and exits on an error, which
        ``wait_ready`` reports at once with its log (and the command to run by hand)."""

    def _vars(self) -> list[str]:
        h = self.home
        return [
            f"--var=LOCAL_CONFDIR={h}",
            f"--var=RUNDIR={h / 'run'}",
            f"--var=DBDIR={h / 'db'}",
            f"--var=LOGDIR={h / 'log'}",
        ]

    @property
    def pidfile(self) -> Path:
        return self.home / "run" / "rspamd.pid"

    def start(self) -> None:
        """In the foreground of a process of our own (``-f``): rspamd loads its config for
        about a second before it would daemonize, and the bring-up need not wait for that."""
        self.started_at = time.monotonic()
        self.pidfile.unlink(missing_ok=True)
        # niced while it loads: the daemons on the bring-up's critical path get the CPU first
        argv = ["nice", "-n", str(LOAD_NICE), "rspamd", "-f", "-u", "_rspamd", "-g", "_rspamd"]
        argv += ["-c", "/etc/rspamd/rspamd.conf"]
        self.child = self.node.spawn([*argv, "-p", str(self.pidfile), *self._vars()], log=self.start_log())
        self.pid = self.child.pid  # mnexec and nice exec rspamd itself

    def wait_ready(self, timeout: float) -> None:
        def answers() -> bool:
            with netns(self.node.pid):
                socket.create_connection(("127.0.0.1", MILTER_PORT), timeout=1).close()
                s = socket.create_connection(("127.0.0.1", CONTROLLER_PORT), timeout=1)
            try:
                s.settimeout(2)
                s.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
                reply = s.recv(4096)
            finally:
                s.close()
            return reply.startswith(b"HTTP/1.") and b" 200 " in reply[:20] and b"pong" in reply

        self.poll(
            answers,
            timeout,
            "answer on its milter port and the controller's /ping",
            hint=f"check the config inside the node: rspamadm {' '.join(self._vars())} configtest",
        )
        for pid in [self.pid or 0, *_children(self.pid or 0)]:
            try:
                os.setpriority(os.PRIO_PROCESS, pid, 0)  # loaded: scan at normal priority
            except OSError:
                pass
        if not self.cache.is_dir():
            self._keep_warm_db()

    def _keep_warm_db(self) -> None:
        """Keep this instance's compiled DBDIR for every later node (once per rspamd version)."""
        tmp = self.cache.with_name(self.cache.name + f".tmp{os.getpid()}-{threading.get_ident()}")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(self.home / "db"), str(tmp)], check=True, stdin=subprocess.DEVNULL)
        for name in PER_INSTANCE:
            p = tmp / name
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        try:
            tmp.rename(self.cache)
        except OSError:  # another lab made it first
            shutil.rmtree(tmp, ignore_errors=True)

    def stop(self) -> list[int]:
        self.pid = self.pid or read_pid(self.pidfile)
        workers = _children(self.pid) if self.pid else []
        left = super().stop()
        if self.child is not None:
            self.child.poll()  # reap it
        return left + proc.terminate([w for w in workers if proc.alive(w)], grace=2.0)

    def logs(self) -> list[Path]:
        return [self.home / "log" / "rspamd.log"]

    def version(self) -> str:
        return command_version(["rspamd", "--version"])


def _children(pid: int) -> list[int]:
    """The worker processes of rspamd's main process (they exit with it; stragglers are reported)."""
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
