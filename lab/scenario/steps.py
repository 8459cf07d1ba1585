"""One function per scenario action.

A step function gets the run context and the step's validated parameters and returns
an ``Outcome``.  It never raises for an expected failure (a refused login is data);
exceptions mean the harness itself broke and become an ``error`` result.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.report.results import FAILED, PASSED
from lab.runtime.lab import Lab
from lab.services.mail import Dovecot


@dataclass
class Outcome:
    status: str
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def passed(message: str = "", **details: Any) -> Outcome:
    return Outcome(PASSED, message, details)


def failed(message: str, **details: Any) -> Outcome:
    return Outcome(FAILED, message, details)


@dataclass
class Context:
    lab: Lab
    run_id: str
    report_dir: Path
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the clients write their TLS secrets (so captures can be decrypted) into the run's
    #: state, which every node sees; the report gets a copy (``save_keylog``)
    record_keys: bool = False

    @property
    def keylog(self) -> Path | None:
        if not self.record_keys or self.lab.run is None:
            return None
        return self.lab.run.state / "keylog.txt"

    def save_keylog(self) -> Path | None:
        """Copy the clients' key log into the report folder (before the state goes)."""
        src = self.keylog
        if src is None or not src.exists():
            return None
        dst = self.report_dir / "keylog.txt"
        dst.write_bytes(src.read_bytes())
        return dst

    @property
    def plan(self):  # type: ignore[no-untyped-def]
        return self.lab.plan

    def client(self, node: str, kind: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run a protocol client inside ``node`` and return its JSON report."""
        r = self.lab.node(node).run([sys.executable, "-m", "lab.clients", kind, json.dumps(payload)],
                                    timeout=timeout + 15)
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise RuntimeError(f"the {kind} client failed inside {node} (exit {r.returncode}): "
                               f"{(r.stderr or r.stdout).strip()[-1500:]}")

    def password(self, login: str, given: str | None) -> str:
        if given is not None:
            return given
        user = self.plan.user(login)
        assert user is not None, login  # validation checked it
        return user.password

    def mailbox_store(self, address: str) -> Dovecot:
        domain = address.split("@", 1)[1]
        for host in self.plan.mail.values():
            if domain in host.domains:
                svc = self.lab.service(host.node, Dovecot)
                assert isinstance(svc, Dovecot)
                return svc
        raise KeyError(address)


ACTIONS: dict[str, Callable[[Context, Any], Outcome]] = {}


def action(name: str) -> Callable[[Callable[[Context, Any], Outcome]], Callable[[Context, Any], Outcome]]:
    def register(fn: Callable[[Context, Any], Outcome]) -> Callable[[Context, Any], Outcome]:
        ACTIONS[name] = fn
        return fn
    return register



# the actions register themselves on import
from lab.scenario import mail_steps, net_steps, waits  # noqa: E402,F401  (registration)
