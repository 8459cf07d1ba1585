"""One mail path of a running lab, measured: our client against smtp-source, counted in a Maildir (bench/bench.py's mail and relay sections)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from lab.deploy.lab import Lab

BENCH = Path(__file__).resolve().parent


def maildir_files(maildir: Path) -> dict[str, float]:
    """name -> ctime (when it appeared in new/ or cur/) of every message file."""
    out: dict[str, float] = {}
    for sub in ("new", "cur"):
        try:
            with os.scandir(maildir / sub) as it:
                for e in it:
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    out[e.name.split(":")[0]] = max(st.st_ctime, st.st_mtime)
        except FileNotFoundError:
            pass
    return out


class MailPath:
    """One mail path of a running lab: our client and smtp-source, counted in a Maildir."""

    def __init__(
        self,
        lab: Lab,
        *,
        client: str,
        server_node: str,
        server: str,
        port: int,
        login: str,
        sender: str,
        rcpt: str,
        store: str,
        source_node: str,
        source_target: str,
        source_helo: str,
    ):
        from lab.services.mail import Dovecot

        self.lab = lab
        self.client, self.server, self.port = client, server, port
        self.login, self.sender, self.rcpt = login, sender, rcpt
        user = lab.plan.user(login)
        assert user is not None, login
        self.password = user.password
        dov = lab.service(store, Dovecot)
        assert isinstance(dov, Dovecot), store
        self.maildir = dov.maildir(rcpt)
        self.source_node, self.source_target, self.source_helo = source_node, source_target, source_helo
        self.tag = 0

    def _wait(self, before: dict[str, float], want: int, timeout: float) -> tuple[int, float | None]:
        deadline = time.monotonic() + timeout
        while True:
            now = maildir_files(self.maildir)
            new = {k: v for k, v in now.items() if k not in before}
            if len(new) >= want or time.monotonic() > deadline:
                return len(new), (max(new.values()) if new else None)
            time.sleep(0.02)

    def ours(self, messages: int, conns: int, timeout: float = 120) -> dict[str, Any]:
        self.tag += 1
        payload = {
            "server": self.server,
            "port": self.port,
            "tls": "starttls",
            "login": self.login,
            "password": self.password,
            "sender": self.sender,
            "to": [self.rcpt],
            "conns": conns,
            "messages": messages,
            "ca_file": str(self.lab.dep.ca.ca_file),
            "size": 1000,
            "tag": f"{os.getpid()}.{self.tag}",
            "helo": self.lab.plan.nodes[self.client].fqdn,
            "timeout": 60,
        }
        before = maildir_files(self.maildir)
        r = self.lab.node(self.client).run(
            [sys.executable, str(BENCH / "mailload.py"), json.dumps(payload)], timeout=timeout
        )
        try:
            res = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise RuntimeError(
                f"mailload.py failed in {self.client} (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-1500:]}"
            ) from None
        if res["errors"] or res["accepted"] < messages:
            raise RuntimeError(f"mailload: {res['accepted']}/{messages} accepted: {res['errors']}")
        got, last = self._wait(before, res["accepted"], timeout)
        if got < res["accepted"] or last is None:
            raise RuntimeError(f"only {got} of {res['accepted']} messages reached {self.maildir} within {timeout} s")
        span = last - res["first_send"]
        return {
            "messages": got,
            "conns": conns,
            "seconds": round(span, 4),
            "rate": got / span,
            "client_s": round(res["done"] - res["first_send"], 4),
        }

    def smtp_source(self, messages: int, conns: int, timeout: float = 120) -> dict[str, Any]:
        before = maildir_files(self.maildir)
        args = [
            "smtp-source",
            "-d",
            "-l",
            "1000",
            "-m",
            str(messages),
            "-s",
            str(conns),
            "-M",
            self.source_helo,
            "-f",
            self.sender,
            "-t",
            self.rcpt,
            self.source_target,
        ]
        t0 = time.time()
        r = self.lab.node(self.source_node).run(args, timeout=timeout)
        done = time.time()
        if r.returncode != 0:
            raise RuntimeError(f"smtp-source failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-1000:]}")
        got, last = self._wait(before, messages, timeout)
        if got < messages or last is None:
            raise RuntimeError(
                f"only {got} of {messages} smtp-source messages reached {self.maildir} within {timeout} s"
            )
        span = last - t0
        return {
            "messages": got,
            "conns": conns,
            "seconds": round(span, 4),
            "rate": got / span,
            "client_s": round(done - t0, 4),
            "command": " ".join(args),
        }

    def warm_up(self) -> None:
        """One message each way first (DNS lookups, TLS session caches, process pools)."""
        self.ours(2, 1, timeout=60)
        self.smtp_source(2, 1, timeout=60)


# -- OSPF ----------------------------------------------------------------------------
