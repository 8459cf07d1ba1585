"""OpenSSH's server on the nodes whose ``services:`` list ``ssh``: key-only administration.

Everything is per node and per run: the config, an ed25519 host key, the pid file, the
authorized keys (one file per administrator), and the accounts themselves: the node
gets private copies of /etc/passwd, /etc/group and /etc/shadow (bind-mounted over the
machine's inside the node only) with the topology's ``admins`` added, so nothing of the
machine's own accounts changes.  An administrator's key pair is made once per run in the
run's state (``ssh/<admin>/id_ed25519``), and every host key goes into one per-run
``ssh/known_hosts``: the ``ssh`` step connects with StrictHostKeyChecking=yes.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from lab.model.nodeplan import NodePlan
from lab.model.plan import Plan
from lab.services.base import TEMPLATES, Service, Template, command_version

FIRST_UID = 2001

# The nodes of one stage render side by side: an administrator's key is made by the first.
_KEY_LOCK = threading.Lock()


def admin_key(state: Path, user: str) -> Path:
    """The administrator's private key for this run (made on first use)."""
    key = state / "ssh" / user / "id_ed25519"
    with _KEY_LOCK:
        return _make_key(key, user)


def _make_key(key: Path, user: str) -> Path:
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{user}@mail-lab", "-f", str(key)],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    return key


def known_hosts(state: Path) -> Path:
    return state / "ssh" / "known_hosts"


def account_lines(admins: dict[str, Any], hashes: dict[str, str]) -> tuple[str, str, str]:
    """passwd, group and shadow lines for the administrators (pure)."""
    pw, gr, sh = "", "", ""
    for k, user in enumerate(sorted(admins)):
        uid = FIRST_UID + k
        pw += f"{user}:x:{uid}:{uid}:mail-lab administrator:/home/{user}:/bin/sh\n"
        gr += f"{user}:x:{uid}:\n"
        sh += f"{user}:{hashes.get(user, '*')}:20000:0:99999:7:::\n"
    return pw, gr, sh


class Sshd(Service):
    daemon = "sshd"
    stage = 70
    commands = ("sshd", "ssh", "ssh-keygen", "openssl")

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return node.role != "switch" and "ssh" in plan.topology.data.nodes[node.name].services

    @classmethod
    def private_dirs(cls, ndir: Path) -> list[Any]:
        return ["/run"]  # sshd needs its privilege-separation folder /run/sshd

    @property
    def home(self) -> Path:
        return self.node.dir / "ssh"

    @property
    def admins(self) -> dict[str, Any]:
        return dict(self.dep.plan.topology.data.admins)

    def context(self) -> dict[str, Any]:
        return {
            "hostname": self.node.plan.fqdn,
            "listen": [i.ip for i in self.node.plan.interfaces if i.ip] or ["0.0.0.0"],
            "host_key": str(self.home / "host_ed25519"),
            "pid_file": str(self.home / "sshd.pid"),
            "keys_dir": str(self.home / "authorized"),
            "users": sorted(self.admins),
        }

    def templates(self) -> list[Template]:
        return [Template(TEMPLATES, "sshd_config.j2", self.context(), self.home / "sshd_config")]

    def render(self) -> None:
        (self.home / "authorized").mkdir(parents=True, exist_ok=True)
        super().render()
        hk = self.home / "host_ed25519"
        if not hk.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.node.plan.fqdn, "-f", str(hk)],
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
            )
        state = self.dep.run.state
        for user in self.admins:
            pub = admin_key(state, user).with_suffix(".pub").read_text()
            self.write(self.home / "authorized" / user, pub, mode=0o644)
        names = ",".join([self.node.plan.fqdn, self.node.name, *self.context()["listen"]])
        kh = known_hosts(state)
        with _KEY_LOCK, open(kh, "a") as f:
            f.write(f"{names} {' '.join(hk.with_suffix('.pub').read_text().split()[:2])}\n")
        self._accounts()

    def _accounts(self) -> None:
        """Private passwd/group/shadow with the administrators, bind-mounted in the node."""
        hashes = {}
        for user, a in self.admins.items():
            if a.password:
                r = subprocess.run(
                    ["openssl", "passwd", "-6", "-stdin"], input=a.password, capture_output=True, text=True, check=True
                )
                hashes[user] = r.stdout.strip()
        extra = account_lines(self.admins, hashes)
        for name, lines in zip(("passwd", "group", "shadow"), extra):
            mine = self.home / name
            shutil.copyfile(f"/etc/{name}", mine)
            with open(mine, "a") as f:
                f.write(lines)
            mine.chmod(0o640 if name == "shadow" else 0o644)
            self.run_checked(["mount", "--bind", str(mine), f"/etc/{name}"], f"bind-mounting the node's /etc/{name}")
        for k, user in enumerate(sorted(self.admins)):
            uid = str(FIRST_UID + k)
            self.run_checked(["mkdir", "-p", f"/home/{user}"], "making the admin's home")
            self.run_checked(["chown", f"{uid}:{uid}", f"/home/{user}"], "chown the admin's home")
        self.run_checked(["mkdir", "-p", "-m", "755", "/run/sshd"], "making /run/sshd")

    def check(self) -> None:
        self.run_checked(["/usr/sbin/sshd", "-t", "-f", str(self.home / "sshd_config")], "sshd -t")

    def start(self) -> None:
        self.started_at = time.monotonic()
        p = self.node.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", str(self.home / "sshd_config")], log=self.log)
        self.pid = p.pid

    @property
    def log(self) -> Path:
        return self.home / "sshd.log"

    def wait_ready(self, timeout: float) -> None:
        ip = self.context()["listen"][0]

        self.poll(lambda: self.greets(ip, 22, b"SSH-2.0-"), timeout, "send its SSH-2.0 banner on port 22")

    def logs(self) -> list[Path]:
        return [self.log]

    def version(self) -> str:
        return command_version(["ssh", "-V"])
