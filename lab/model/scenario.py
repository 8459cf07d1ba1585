"""Scenario files: a topology plus an ordered list of steps.

Each step is a mapping with one action key (``send``, ``fetch``, ``dns``, ``expect``,
``wait_for``) holding that action's parameters, and optionally a ``name``::

    - name: alice submits a message for bob
      send: {on: pc1, login: alice@projet.dz, to: [bob@projet.dz], message: m1}

Every reference (hosts, users, servers, message labels) is checked against the
topology before anything is built.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from lab.errors import InputError, Problem
from lab.model.plan import Plan, make_plan
from lab.model.schema import Strict, parse, suggest
from lab.model.topology import Topology, load_topology
from lab.model.yamlload import Located, load_file


class Reject(Strict):
    """An expected refusal: the server must answer with this code at this stage."""

    code: int = Field(ge=200, le=599)
    stage: Literal["connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data"] | None = None


class Send(Strict):
    """Submit one message with a real SMTP client (aiosmtplib) from a host."""

    on: str
    server: str = Field(description="host name or node name of the SMTP server")
    port: int = Field(587, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    login: str | None = Field(None, description="SASL login (a mailbox address); omit for no AUTH")
    password: str | None = Field(None, description="default: the user's password from the topology")
    sender: str | None = Field(None, alias="from", description="envelope and header From (default: login)")
    to: list[str] = Field(min_length=1)
    subject: str = "mail-lab test message"
    body: str = "Hello from mail-lab.\n"
    message: str | None = Field(None, description="a label later steps use to refer to this message")
    reject: Reject | None = Field(None, description="expect the server to refuse (negative test)")
    timeout: float = Field(20, gt=0, le=600)


class Fetch(Strict):
    """Fetch a mailbox over IMAPS/POP3S (or plain with STARTTLS) and find a message."""

    on: str
    server: str
    protocol: Literal["imaps", "pop3s", "imap", "pop3"] = "imaps"
    port: int | None = Field(None, ge=1, le=65535)
    login: str
    password: str | None = None
    message: str | None = Field(None, description="label of a sent message that must be there")
    count: int | None = Field(None, ge=0, description="exact number of messages expected")
    reject: bool = Field(False, description="expect the login to be refused")
    timeout: float = Field(20, gt=0, le=600)


class Dns(Strict):
    """Resolve a name from a host with dnspython, through that host's own resolver."""

    on: str
    query: str
    type: Literal["A", "AAAA", "MX", "NS", "PTR", "SOA", "CNAME", "TXT"] = "A"
    server: str | None = Field(None, description="ask this server instead of the host's resolv.conf")
    expect: list[str] | None = Field(None, description="the exact set of answers (text form)")
    rcode: Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"] = "NOERROR"


class Expect(Strict):
    """Check a mailbox on the mail node's disk (the Maildir Dovecot wrote)."""

    mailbox: str
    count: int | None = Field(None, ge=0)
    message: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> "Expect":
        if self.count is None and self.message is None and not self.headers:
            raise ValueError("an expect step needs at least one of count, message, headers")
        return self


class WaitFor(Strict):
    """Wait until a condition holds, polling, up to a timeout (never a bare sleep)."""

    condition: Literal["delivered", "queue_empty", "port_open"]
    mailbox: str | None = None
    message: str | None = None
    node: str | None = None
    on: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    timeout: float = Field(15, gt=0, le=3600)

    @model_validator(mode="after")
    def _fields(self) -> "WaitFor":
        need = {"delivered": ("mailbox",), "queue_empty": ("node",), "port_open": ("on", "node", "port")}
        missing = [k for k in need[self.condition] if getattr(self, k) is None]
        if missing:
            raise ValueError(f"condition '{self.condition}' needs: " + ", ".join(missing))
        return self


ACTIONS: dict[str, type[Strict]] = {
    "send": Send, "fetch": Fetch, "dns": Dns, "expect": Expect, "wait_for": WaitFor,
}


class Step:
    def __init__(self, index: int, kind: str, name: str, params: Any, line: int | None):
        self.index = index
        self.kind = kind
        self.name = name
        self.params = params
        self.line = line

    def __repr__(self) -> str:
        return f"Step({self.index}, {self.kind}, {self.name!r})"


class Scenario:
    def __init__(self, path: Path, name: str, description: str, topology: Topology,
                 plan: Plan, steps: list[Step], src: Located):
        self.path = path
        self.name = name
        self.description = description
        self.topology = topology
        self.plan = plan
        self.steps = steps
        self.src = src


TOP_KEYS = ("name", "description", "topology", "steps")


def load_scenario(path: str | Path) -> Scenario:
    src = load_file(path)
    p = src.problem
    data = src.data
    if not isinstance(data, dict):
        raise InputError(problems=[p((), "a scenario must be a mapping with name, topology, steps")])
    problems: list[Problem] = []
    for key in data:
        if key not in TOP_KEYS:
            problems.append(p((key,), f"unknown key '{key}'", suggest(key, TOP_KEYS) or "allowed: " + ", ".join(TOP_KEYS)))
    for key in ("topology", "steps"):
        if key not in data:
            problems.append(p((), f"missing key '{key}'"))
    if problems:
        raise InputError(problems=problems)
    if not isinstance(data["topology"], str):
        raise InputError(problems=[p(("topology",), "must be a path to a topology file")])
    topo_path = (Path(src.file).parent / data["topology"]).resolve()
    if not topo_path.exists():
        raise InputError(problems=[p(("topology",), f"no such file: {topo_path}",
                                     "the path is relative to the scenario file")])
    topology = load_topology(topo_path)
    plan = make_plan(topology)
    raw_steps = data["steps"]
    if not isinstance(raw_steps, list) or not raw_steps:
        raise InputError(problems=[p(("steps",), "must be a non-empty list of steps")])
    steps: list[Step] = []
    for i, raw in enumerate(raw_steps):
        where = ("steps", i)
        if not isinstance(raw, dict):
            problems.append(p(where, "a step must be a mapping like {send: {...}}"))
            continue
        kinds = [k for k in raw if k != "name"]
        if len(kinds) != 1:
            problems.append(p(where, "a step needs exactly one action key besides 'name'"
                              + (f", found: {', '.join(kinds)}" if kinds else ""),
                              "actions: " + ", ".join(ACTIONS)))
            continue
        kind = kinds[0]
        if kind not in ACTIONS:
            problems.append(p(where + (kind,), f"unknown step kind '{kind}'",
                              suggest(kind, list(ACTIONS)) or "actions: " + ", ".join(ACTIONS)))
            continue
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            problems.append(p(where + ("name",), "a step name must be text"))
            continue
        body = raw[kind] if raw[kind] is not None else {}
        try:
            params = parse(ACTIONS[kind], body, src, where + (kind,))
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        steps.append(Step(i, kind, name or _default_name(kind, params), params, src.where(where)[0]))
    if problems:
        raise InputError(problems=problems)
    problems.extend(_check_refs(steps, plan, src))
    if problems:
        raise InputError(problems=problems)
    return Scenario(Path(src.file), str(data.get("name") or Path(src.file).stem),
                    str(data.get("description") or ""), topology, plan, steps, src)


def _default_name(kind: str, s: Any) -> str:
    if kind == "send":
        return f"{s.on}: send {s.message or ''} {s.sender or s.login or ''} -> {', '.join(s.to)} via {s.server}:{s.port}".replace("  ", " ")
    if kind == "fetch":
        return f"{s.on}: fetch {s.login} over {s.protocol} from {s.server}"
    if kind == "dns":
        return f"{s.on}: dns {s.type} {s.query}"
    if kind == "expect":
        return f"expect mailbox {s.mailbox}"
    return f"wait for {s.condition}"


def _check_refs(steps: list[Step], plan: Plan, src: Located) -> list[Problem]:
    out: list[Problem] = []
    nodes = plan.nodes
    hosts = [n for n, v in nodes.items() if v.role != "switch"]
    labels: set[str] = set()
    for st in steps:
        s = st.params
        where = ("steps", st.index, st.kind)
        for key in ("on", "node"):
            ref = getattr(s, key, None)
            if ref is not None and ref in nodes and ref not in hosts:
                out.append(src.problem(where + (key,), f"'{ref}' is a {nodes[ref].role}: steps run on hosts",
                                       "name a host, e.g. " + ", ".join(hosts[:3])))
            elif ref is not None and ref not in hosts:
                out.append(src.problem(where + (key,), f"unknown node '{ref}'", suggest(ref, hosts)))
        server = getattr(s, "server", None)
        if server is not None and plan.node_by_fqdn(server) is None and not _is_ip(server):
            names = [v.fqdn for v in nodes.values()] + hosts
            out.append(src.problem(where + ("server",), f"'{server}' is neither a node nor a host name of the topology",
                                   suggest(server, names)))
        if st.kind in ("send", "fetch"):
            login = s.login
            if login is not None and s.password is None and plan.user(login) is None:
                out.append(src.problem(where + ("login",), f"'{login}' is not a user of the topology",
                                       "give 'password' too, or add the user under domains"))
        if st.kind == "send":
            for j, rcpt in enumerate(s.to):
                if "@" not in rcpt:
                    out.append(src.problem(where + ("to", j), f"'{rcpt}' is not a mail address"))
            if s.login is None and s.sender is None:
                out.append(src.problem(where, "a send without 'login' needs 'from'"))
            if s.message:
                if s.message in labels:
                    out.append(src.problem(where + ("message",), f"label '{s.message}' is used by an earlier send"))
                labels.add(s.message)
        elif st.kind in ("fetch", "expect", "wait_for"):
            label = getattr(s, "message", None)
            if label is not None and label not in labels:
                out.append(src.problem(where + ("message",), f"no earlier send has message label '{label}'",
                                       suggest(label, labels) if labels else "label a send step with 'message'"))
        if st.kind in ("expect", "wait_for") and getattr(s, "mailbox", None):
            if plan.user(s.mailbox) is None:
                out.append(src.problem(where + ("mailbox",), f"'{s.mailbox}' is not a mailbox of the topology"))
        if st.kind == "wait_for" and s.condition == "queue_empty" and s.node and nodes.get(s.node) \
                and nodes[s.node].role != "mail":
            out.append(src.problem(where + ("node",), f"'{s.node}' is not a mail node"))
    return out


def _is_ip(text: str) -> bool:
    import ipaddress
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False
