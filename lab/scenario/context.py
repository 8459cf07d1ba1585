"""What every scenario action shares: the run context, the outcome, the registry.

A step function gets the run context and the step's validated parameters and returns
an ``Outcome``.  It never raises for an expected failure (a refused login is data);
exceptions mean the harness itself broke and become an ``error`` result.  The actions
register themselves with ``@action`` in ``mail_steps``, ``net_steps`` and
``wait_steps``; ``lab.scenario.steps`` imports them all.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.deploy.lab import Lab
from lab.model.plan import Plan
from lab.report.results import FAILED, PASSED
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

    #: progress lines for long steps (the runner's terminal line)
    progress: Callable[[str], None] | None = None

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    def save_keylog(self) -> Path | None:
        """Copy the clients' key log into the report folder (before the state goes)."""
        src = self.keylog
        if src is None or not src.exists():
            return None
        dst = self.report_dir / "keylog.txt"
        dst.write_bytes(src.read_bytes())
        return dst

    @property
    def ca_file(self) -> str:
        """The bundle of CAs every client of the run trusts (the lab CA, and the ACME CA's root)."""
        return str(self.lab.dep.ca.ca_file) if self.lab.dep else ""

    @property
    def plan(self) -> Plan:
        return self.lab.plan

    def client(
        self, node: str, kind: str, payload: dict[str, Any], timeout: float, module: str = "lab.clients"
    ) -> dict[str, Any]:
        """Run a protocol client inside ``node`` (``python -m MODULE KIND JSON``) and return its JSON report."""
        r = self.lab.node(node).run([sys.executable, "-m", module, kind, json.dumps(payload)], timeout=timeout + 15)
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise RuntimeError(
                f"the {kind} client failed inside {node} (exit {r.returncode}): "
                f"{(r.stderr or r.stdout).strip()[-1500:]}"
            ) from None

    def host_name(self, ref: str) -> str:
        """The name a client connects to: a node's full host name when the scenario names
        the node (certificates are for host names), else what it wrote."""
        node = self.plan.nodes.get(ref)
        return node.fqdn if node is not None else ref

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
