"""One function per scenario action.

A step function gets the run context and the step's validated parameters and returns
an ``Outcome``.  It never raises for an expected failure (a refused login is data);
exceptions mean the harness itself broke and become an ``error`` result.
"""
from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.model import scenario as S
from lab.report.results import FAILED, PASSED
from lab.runtime.lab import Lab
from lab.runtime.node import netns
from lab.services.mail import Dovecot, Postfix


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


@action("send")
def send(ctx: Context, s: S.Send) -> Outcome:
    sender = s.sender or s.login
    assert sender is not None
    label = s.message or f"m{len(ctx.messages) + 1}"
    message_id = f"<{label}.{ctx.run_id}@mail-lab.test>"
    payload = {"server": s.server, "port": s.port, "tls": s.tls, "login": s.login,
               "password": ctx.password(s.login, s.password) if s.login else None,
               "sender": sender, "to": s.to, "subject": s.subject, "body": s.body,
               "message_id": message_id, "ca_file": str(ctx.lab.dep.ca.ca_file) if ctx.lab.dep else "",
               "timeout": s.timeout, "helo": ctx.plan.nodes[s.on].fqdn}
    r = ctx.client(s.on, "send", payload, s.timeout)
    r.pop("password", None)
    if s.reject is not None:
        if r.get("ok"):
            return failed(f"expected the server to refuse with {s.reject.code}, but it accepted the message", **r)
        if r.get("code") != s.reject.code:
            return failed(f"expected {s.reject.code}, got {r.get('error') or r.get('code')} at {r.get('stage')}", **r)
        if s.reject.stage and r.get("stage") != s.reject.stage:
            return failed(f"refused with {s.reject.code} at stage {r.get('stage')}, expected stage {s.reject.stage}", **r)
        return passed(f"refused as expected: {r.get('error')}", **r)
    if not r.get("ok"):
        return failed(f"not accepted at {r.get('stage')}: {r.get('error')}", **r)
    ctx.messages[label] = {"label": label, "message_id": message_id, "sender": sender, "to": list(s.to),
                           "subject": s.subject, "body": s.body, "queue_id": r.get("queue_id"),
                           "sent_at": time.time(), "server": s.server, "port": s.port, "tls": r.get("tls_version")}
    return passed(f"accepted: {r.get('reply')} over {r.get('tls_version') or 'plaintext'}", **r)


def _norm_body(text: str) -> str:
    return text.replace("\r\n", "\n").rstrip("\n")


@action("fetch")
def fetch(ctx: Context, s: S.Fetch) -> Outcome:
    payload = {"server": s.server, "protocol": s.protocol, "port": s.port, "login": s.login,
               "password": ctx.password(s.login, s.password), "ca_file": str(ctx.lab.dep.ca.ca_file) if ctx.lab.dep else "",
               "timeout": s.timeout}
    r = ctx.client(s.on, "fetch", payload, s.timeout)
    if s.reject:
        if r.get("ok"):
            return failed("expected the login to be refused, but it succeeded", **r)
        if r.get("stage") not in ("auth", "starttls", "connect"):
            return failed(f"failed at {r.get('stage')}, expected a refused login: {r.get('error')}", **r)
        return passed(f"refused as expected at {r.get('stage')}: {r.get('error')}", **r)
    if not r.get("ok"):
        return failed(f"{s.protocol} failed at {r.get('stage')}: {r.get('error')}", **r)
    msgs = r.get("messages", [])
    if s.count is not None and len(msgs) != s.count:
        return failed(f"expected {s.count} message(s) in the mailbox, found {len(msgs)}", **r)
    if s.message:
        want = ctx.messages.get(s.message)
        if want is None:
            return failed(f"message '{s.message}' was never accepted, nothing to look for", **r)
        found = [m for m in msgs if m["message_id"] == want["message_id"]]
        if not found:
            return failed(f"message '{s.message}' {want['message_id']} is not in {s.login}'s mailbox "
                          f"({len(msgs)} other message(s))", **r)
        if len(found) > 1:
            return failed(f"message '{s.message}' is there {len(found)} times (duplicate delivery)", **r)
        m = found[0]
        if m["subject"] != want["subject"]:
            return failed(f"subject differs: sent {want['subject']!r}, fetched {m['subject']!r}", **r)
        if _norm_body(m["body"]) != _norm_body(want["body"]):
            return failed("body differs from what was sent", sent=want["body"], **r)
        want.setdefault("fetched", []).append({"by": s.login, "protocol": s.protocol, "at": time.time(),
                                               "tls": r.get("tls_version")})
    return passed(f"{len(msgs)} message(s) over {r.get('tls_version')} ({r.get('cipher')})", **r)


@action("dns")
def dns(ctx: Context, s: S.Dns) -> Outcome:
    server = s.server
    if server is not None:
        node = ctx.plan.node_by_fqdn(server)
        server = node.ip if node is not None and node.ip else server
    r = ctx.client(s.on, "dns", {"query": s.query, "type": s.type, "server": server}, 10)
    if not r.get("ok"):
        return failed(f"no answer: {r.get('error')}", **r)
    if r.get("rcode") != s.rcode:
        return failed(f"rcode {r.get('rcode')}, expected {s.rcode}", **r)
    if s.expect is not None:
        got = sorted(a.lower().rstrip() for a in r.get("answers", []))
        want = sorted(e.lower().rstrip() for e in s.expect)
        if got != want:
            return failed(f"answers {got}, expected {want}", **r)
    return passed(", ".join(r.get("answers", [])) or r.get("rcode", ""), **r)


@action("expect")
def expect(ctx: Context, s: S.Expect) -> Outcome:
    store = ctx.mailbox_store(s.mailbox)
    msgs = store.maildir_messages(s.mailbox)
    details: dict[str, Any] = {"mailbox": s.mailbox, "messages": [
        {"file": m["file"], "message_id": m["message_id"], "subject": m["subject"]} for m in msgs]}
    if s.count is not None and len(msgs) != s.count:
        return failed(f"{s.mailbox} holds {len(msgs)} message(s), expected {s.count}", **details)
    pool = msgs
    if s.message:
        want = ctx.messages.get(s.message)
        if want is None:
            return failed(f"message '{s.message}' was never accepted", **details)
        pool = [m for m in msgs if m["message_id"] == want["message_id"]]
        if not pool:
            return failed(f"message '{s.message}' {want['message_id']} is not in {s.mailbox}", **details)
    for name, value in s.headers.items():
        if not any(m["headers"].get(name.lower()) == value for m in pool):
            return failed(f"no message with {name}: {value!r} in {s.mailbox}", **details)
    return passed(f"{len(msgs)} message(s) in {s.mailbox}", **details)


@action("wait_for")
def wait_for(ctx: Context, s: S.WaitFor) -> Outcome:
    deadline = time.monotonic() + s.timeout
    probe: Callable[[], tuple[bool, str]]
    if s.condition == "delivered":
        assert s.mailbox is not None
        store = ctx.mailbox_store(s.mailbox)
        want = ctx.messages.get(s.message) if s.message else None
        if s.message and want is None:
            return failed(f"message '{s.message}' was never accepted; it cannot be delivered")

        def probe() -> tuple[bool, str]:
            msgs = store.maildir_messages(s.mailbox)
            if want is None:
                return bool(msgs), f"{len(msgs)} message(s)"
            hit = [m for m in msgs if m["message_id"] == want["message_id"]]
            return bool(hit), f"{len(msgs)} message(s), target {'found' if hit else 'absent'}"
    elif s.condition == "queue_empty":
        assert s.node is not None
        pf = ctx.lab.service(s.node, Postfix)
        assert isinstance(pf, Postfix)

        def probe() -> tuple[bool, str]:
            q = pf.queue()
            return not q, f"{len(q)} message(s) queued"
    else:
        assert s.on and s.node and s.port
        target = ctx.lab.node(s.node).ip
        pid = ctx.lab.node(s.on).pid

        def probe() -> tuple[bool, str]:
            with netns(pid):
                sock = socket.socket()
            sock.settimeout(0.5)
            try:
                sock.connect((target, s.port))
                return True, "open"
            except OSError as exc:
                return False, str(exc)
            finally:
                sock.close()
    start = time.monotonic()
    last = ""
    delay = 0.02
    while True:
        ok, last = probe()
        if ok:
            return passed(f"after {time.monotonic() - start:.2f} s: {last}", waited=round(time.monotonic() - start, 3))
        if time.monotonic() > deadline:
            return failed(f"not {s.condition} within {s.timeout:g} s ({last})", waited=s.timeout)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
