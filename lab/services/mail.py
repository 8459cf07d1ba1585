"""The mail node: Postfix (MTA, submission) and Dovecot (IMAP, POP3, LMTP, SASL).

Templates live in the repo's ``mailnode/`` folder, the artefact an instructor shows a
class.  The node runs the daemons at their standard paths, made private to the node
by Mininet bind mounts (see ``MAIL_PRIVATE_DIRS``), so ``postqueue`` and ``doveadm``
work inside the node as on a real server.
"""

from __future__ import annotations

import base64
import email
import email.policy
import grp
import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from lab.model import mailconfig, mtasts, tlspolicy
from lab.model.plan import MailHost
from lab.runtime.node import netns
from lab.runtime.rundir import STATE_ROOT
from lab.services import certs
from lab.services.base import MAILNODE, Service, Template, command_version, read_pid
from lab.services.rspamd import MILTER

#: (mount point inside the node, folder under the node's dir on the root side)
MAIL_PRIVATE_DIRS = [
    ("/etc/postfix", "etc-postfix"),
    ("/var/spool/postfix", "spool-postfix"),
    ("/var/lib/postfix", "lib-postfix"),
    ("/etc/dovecot", "etc-dovecot"),
    ("/var/lib/dovecot", "lib-dovecot"),
    ("/var/mail", "mail"),
    ("/var/log", "log"),
]
VMAIL_UID = VMAIL_GID = 8  # Debian's 'mail' user owns every Maildir
TLS_DIR = "/etc/postfix/tls"


def ssha512(password: str, salt: bytes | None = None) -> str:
    """Dovecot's {SSHA512}: base64(sha512(password + salt) + salt)."""
    salt = salt if salt is not None else secrets.token_bytes(8)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return "{SSHA512}" + base64.b64encode(digest + salt).decode()


def _mkdir(path: Path, uid: int = 0, gid: int = 0, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


class Postfix(Service):
    daemon = "postfix"
    roles = ("mail",)
    stage = 50
    ready_by: ClassVar[int] = 70  # fail2ban reads its log; nothing else needs it before the end
    commands = ("postfix", "postconf")

    @classmethod
    def private_dirs(cls, ndir: Path) -> list[Any]:
        """Create the node's private folders with the owners Postfix and Dovecot expect."""
        pf = pwd.getpwnam("postfix")
        mail_gid = grp.getgrnam("mail").gr_gid
        etc = _mkdir(ndir / "etc-postfix")
        for f in ("dynamicmaps.cf", "postfix-files"):
            shutil.copy2(f"/etc/postfix/{f}", etc / f)
        for d in ("dynamicmaps.cf.d", "postfix-files.d"):
            _mkdir(etc / d)
        _mkdir(etc / "tls")
        _mkdir(ndir / "spool-postfix")  # `postfix check` builds the queue tree
        _mkdir(ndir / "lib-postfix", pf.pw_uid, pf.pw_gid, 0o700)
        _mkdir(ndir / "etc-dovecot")
        _mkdir(ndir / "lib-dovecot", mode=0o750)
        _mkdir(ndir / "mail", 0, mail_gid, 0o2775)
        _mkdir(ndir / "mail" / "vhosts", VMAIL_UID, VMAIL_GID, 0o770)
        _mkdir(ndir / "log")
        return [(mount, str(ndir / sub)) for mount, sub in MAIL_PRIVATE_DIRS] + ["/run"]

    @property
    def host(self) -> MailHost:
        return self.dep.plan.mail[self.node.name]

    def context(self) -> dict[str, Any]:
        return {
            "hostname": self.host.hostname,
            "domains": self.host.domains,
            "address": self.node.ip,
            "cert_file": f"{TLS_DIR}/server.crt",
            "key_file": f"{TLS_DIR}/server.key",
            "ca_file": f"{TLS_DIR}/ca.crt",
            "vmail_uid": VMAIL_UID,
            "vmail_gid": VMAIL_GID,
            "relay_retry": self.dep.fast_retry,
            "filtering": self.host.filtering,
            "milter": MILTER,
            "dane": self.host.dane,
            "mta_sts": self.host.mta_sts,
            "mta_sts_port": mtasts.RESOLVER_PORT,
            "tls_policy": self.host.tls_policy,
            "intermediate_ciphers": ":".join(tlspolicy.INTERMEDIATE_TLS12),
        }

    def templates(self) -> list[Template]:
        etc, ctx = self.node.dir / "etc-postfix", self.context()
        return [
            Template(MAILNODE / "postfix", f"{name}.j2", ctx, etc / name, f"/etc/postfix/{name}")
            for name in ("main.cf", "master.cf")
        ]

    def render(self) -> None:
        etc = self.node.dir / "etc-postfix"
        # the node's certificate (lab CA by default, or ACME, or a teaching variant),
        # for the host name and every hosted domain
        crt, tls_key = certs.ensure(
            self.dep.plan,
            self.dep.ca,
            self.node.name,
            self.node.dir,
            self.node.ip,
            key=self.dep.keys.tls_key(self.node.name),  # its TLSA record may already be published
        )
        self.install_certificate(crt, tls_key)
        super().render()
        users = self.host.users
        self.write(
            etc / "vmailbox", "".join(f"{u.address} {u.domain}/{u.name}/\n" for u in users), "/etc/postfix/vmailbox"
        )
        self.write(
            etc / "sender_login", "".join(f"{u.address} {u.address}\n" for u in users), "/etc/postfix/sender_login"
        )
        cfg = self.dep.plan.topology.data.nodes[self.node.name].config
        if cfg is not None and (cfg.postfix or cfg.postfix_master):
            # the topology's own settings replace the shipped ones (postconf edits in place)
            sections = cfg.sections()
            for key, value in sections["postfix"].items():
                mailconfig.assert_safe("postfix", key, value)
                self._postconf(["-e", f"{key}={value}"])
            for key, value in sections["postfix_master"].items():
                mailconfig.assert_safe("postfix", key, value, spaces=False)
                self._postconf(["-P", f"{key}={value}"])
            past = time.time() - 5
            for name in ("main.cf", "master.cf"):
                os.utime(etc / name, (past, past))

    def install_certificate(self, crt: Path, key: Path) -> None:
        """Copy the node's certificate (and the bundle of trusted CAs) into Postfix's folder."""
        tls = self.node.dir / "etc-postfix" / "tls"
        shutil.copyfile(crt, tls / "server.crt")
        shutil.copyfile(key, tls / "server.key")
        os.chmod(tls / "server.key", 0o600)
        shutil.copyfile(self.dep.ca.ca_file, tls / "ca.crt")

    def reload(self) -> None:
        """Read the certificate again (after a renewal): ``postfix reload``."""
        self.run_checked(["postfix", "reload"], "postfix reload")

    def _postconf(self, args: list[str]) -> None:
        etc = self.node.dir / "etc-postfix"
        r = subprocess.run(
            ["postconf", "-c", str(etc), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if r.returncode != 0 or "warning" in r.stderr:
            raise self.fail(f"postconf {' '.join(args)} failed", extra=(r.stdout + r.stderr).strip())

    def check(self) -> None:
        # The first `postfix check` of an empty spool builds the queue tree (about 2 s
        # of post-install work); seed the node's spool from a tree built once per
        # Postfix version, then check as usual.
        spool = self.node.dir / "spool-postfix"
        cache = STATE_ROOT / "cache" / f"postfix-spool-{self.version()}"
        if cache.is_dir():
            subprocess.run(["cp", "-a", f"{cache}/.", str(spool)], check=True, stdin=subprocess.DEVNULL)
        self.run_checked(["postfix", "check"], "postfix check")
        if not cache.is_dir():
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + f".tmp{os.getpid()}-{threading.get_ident()}")
            subprocess.run(["cp", "-a", str(spool), str(tmp)], check=True, stdin=subprocess.DEVNULL)
            try:
                tmp.rename(cache)
            except OSError:  # another lab made it first
                shutil.rmtree(tmp, ignore_errors=True)
        r = self.node.run(["postconf", "-n"])
        warnings = [line for line in r.stderr.splitlines() if "warning" in line]
        if warnings:
            raise self.fail("postconf reports warnings", extra="\n".join(warnings))
        # `postfix start` would run the same checks again (check-fatal and check-warn):
        # its quick-start flag says they were just made
        (spool / "quick-start").touch()

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.run_checked(["postfix", "start"], "postfix start", output=self.start_log())
        self.pid = read_pid(self.node.dir / "spool-postfix" / "pid" / "master.pid", timeout=5)
        if self.pid is None:  # its master died at once: say so now, with its log, not after the ready timeout
            raise self.fail("started but its master wrote no pid file (it exited)", log=self.start_log())

    def wait_ready(self, timeout: float) -> None:
        self.poll(
            lambda: self.greets(str(self.node.ip), 25, b"220 "), timeout, "answer with an SMTP 220 banner on port 25"
        )

    def stop(self) -> list[int]:
        self.pid = self.pid or read_pid(self.node.dir / "spool-postfix" / "pid" / "master.pid")
        return super().stop()

    def queue(self) -> list[dict[str, Any]]:
        r = self.node.run(["postqueue", "-j"])
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def logs(self) -> list[Path]:
        return [self.node.dir / "log" / "postfix.log"]

    def version(self) -> str:
        return command_version(["postconf", "-d", "-h", "mail_version"])


class Dovecot(Service):
    daemon = "dovecot"
    roles = ("mail",)
    commands = ("dovecot", "doveconf")
    stage = 60  # after Postfix: its LMTP and auth sockets live in Postfix's spool
    ready_by: ClassVar[int] = 70  # fail2ban reads its log
    stop_children = True  # told alone, the master waits a second for them (1.1 s; 0.1 s so)

    @property
    def host(self) -> MailHost:
        return self.dep.plan.mail[self.node.name]

    def templates(self) -> list[Template]:
        return [
            Template(
                MAILNODE / "dovecot",
                "dovecot.conf.j2",
                Postfix(self.node, self.dep).context(),
                self.node.dir / "etc-dovecot" / "dovecot.conf",
                "/etc/dovecot/dovecot.conf",
            )
        ]

    def render(self) -> None:
        etc = self.node.dir / "etc-dovecot"
        (t,) = self.templates()
        text = t.text()
        cfg = self.dep.plan.topology.data.nodes[self.node.name].config
        if cfg is not None and cfg.dovecot:
            text += "\n# --- the topology's own settings (they replace the ones above) ---\n"
            for k, v in cfg.sections()["dovecot"].items():
                mailconfig.assert_safe("dovecot", k, v)
                text += f"{k} = {v}\n"
        self.write(t.path, text, t.shown_as)
        lines = "".join(
            f"{u.address}:{ssha512(u.password)}:{VMAIL_UID}:{VMAIL_GID}::/var/mail/vhosts/{u.domain}/{u.name}::\n"
            for u in self.host.users
        )
        users = self.write(etc / "users", lines, "/etc/dovecot/users", mode=0o640)
        os.chown(users, 0, grp.getgrnam("dovecot").gr_gid)

    def check(self) -> None:
        self.run_checked(["doveconf", "-n", "-c", "/etc/dovecot/dovecot.conf"], "doveconf -n")

    @property
    def pidfile(self) -> Path:
        # /run is a tmpfs private to the node: reach it through the node's root
        return Path(f"/proc/{self.node.pid}/root/run/dovecot/master.pid")

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.run_checked(["dovecot", "-c", "/etc/dovecot/dovecot.conf"], "starting dovecot", output=self.start_log())
        self.pid = read_pid(self.pidfile, timeout=5)
        if self.pid is None:  # its master died at once: say so now, with its log, not after the ready timeout
            raise self.fail("started but its master wrote no pid file (it exited)")

    def wait_ready(self, timeout: float) -> None:
        spool = self.node.dir / "spool-postfix" / "private"
        ctx = certs.readiness_context(self.dep.plan, self.node.name, self.dep.ca.ca_file)

        def answers() -> bool:
            if not ((spool / "dovecot-lmtp").exists() and (spool / "auth").exists()):
                return False
            with netns(self.node.pid):
                raw = socket.create_connection((self.node.ip, 993), timeout=1)
            with ctx.wrap_socket(raw, server_hostname=self.host.hostname) as s:
                s.settimeout(2)
                return s.recv(512).startswith(b"* OK")

        self.poll(answers, timeout, "greet on IMAPS 993 with its LMTP and auth sockets in place")

    def stop(self) -> list[int]:
        self.pid = self.pid or read_pid(self.pidfile)
        return super().stop()

    def reload(self) -> None:
        """Read the certificate again (after a renewal): ``doveadm reload``."""
        self.run_checked(["doveadm", "reload"], "doveadm reload")

    def maildir(self, address: str) -> Path:
        user, domain = address.split("@", 1)
        return self.node.dir / "mail" / "vhosts" / domain / user / "Maildir"

    def maildir_messages(self, address: str) -> list[dict[str, Any]]:
        """Every message in the mailbox's INBOX (new/ and cur/), headers parsed."""
        out = []
        base = self.maildir(address)
        for sub in ("new", "cur"):
            d = base / sub
            if not d.is_dir():
                continue
            for f in sorted(d.iterdir()):
                try:
                    with open(f, "rb") as fh:
                        msg = email.message_from_binary_file(fh, policy=email.policy.compat32)
                except OSError:
                    continue  # moved between new/ and cur/ while we looked
                headers = {k.lower(): str(v) for k, v in msg.items()}
                out.append(
                    {
                        "file": f"{sub}/{f.name}",
                        "message_id": headers.get("message-id", "").strip(),
                        "subject": headers.get("subject", ""),
                        "headers": headers,
                    }
                )
        return out

    def logs(self) -> list[Path]:
        return [self.node.dir / "log" / "dovecot.log"]

    def version(self) -> str:
        return command_version(["dovecot", "--version"])


__all__ = ["MAIL_PRIVATE_DIRS", "Dovecot", "Postfix", "ssha512"]
