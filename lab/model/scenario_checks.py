"""Cross-checks of a scenario's steps and wire assertions against its topology.

One checker per step kind (``CHECKS``) plus checks every step shares (the hosts it runs
on, the servers it names, the message labels it refers to).  They return located
problems and change nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from lab.errors import Problem
from lab.model.actions import DAEMONS, Invite, Wire
from lab.model.nodeplan import NodePlan
from lab.model.plan import Plan
from lab.model.schema import suggest
from lab.model.yamlload import Located, PathKey

#: what each role's daemons listen on (tcp unless it says udp); a wire TLS check on a
#: port nothing listens on could only pass, so it is refused
LISTENS: dict[str, set[int]] = {
    "mail": {25, 465, 587, 110, 995, 143, 993},
    "dns": {53},
    "web": {80, 443},
    "proxy": {3128},
    "webmail": {80, 443},
    "acme": {14000, 15000},
}
#: what a node's extra services listen on (``services:``)
SERVICE_LISTENS: dict[str, set[int]] = {"webmail": {80, 443}, "ssh": {22}, "calendar": {5232}}


def listens(plan: Plan, node: str) -> set[int]:
    """The ports a node's daemons listen on: its role's and its services'."""
    n = plan.nodes[node]
    out = set(LISTENS.get(n.role, ()))
    for svc in plan.topology.data.nodes[node].services:
        out |= SERVICE_LISTENS[svc]
    return out


MAIL_PORTS = {"send": 587, "flood": 587, "smtp": 25}
FETCH_PORTS = {"imaps": 993, "pop3s": 995, "imap": 143, "pop3": 110}


class Refs:
    """What the checkers look things up in."""

    def __init__(self, plan: Plan, src: Located):
        self.plan = plan
        self.src = src
        self.nodes = plan.nodes
        self.hosts = [n for n, v in plan.nodes.items() if v.role != "switch"]
        self.labels: set[str] = set()
        self.owner = {i.ip: n for n in plan.nodes.values() for i in n.interfaces if i.ip}

    def p(self, path: PathKey, message: str, hint: str | None = None) -> Problem:
        return self.src.problem(path, message, hint)

    def node_named(self, ref: str) -> NodePlan | None:
        """A node by name, host name, or any of its addresses."""
        return (
            self.plan.node_by_fqdn(ref)
            or self.owner.get(ref)
            or (self.plan.node_by_fqdn(ref.split(".")[0]) if "." in ref and not _is_ip(ref) else None)
        )

    def forwards_to(self, node: NodePlan, port: int) -> NodePlan | None:
        """The node a firewall's port forward sends ``port`` to."""
        fw = self.plan.firewalls.get(node.name)
        for f in fw.forwards if fw else ():
            if f.port.lo == port:
                return self.nodes[f.to_node]
        return None


Checker = Callable[[Refs, Any, PathKey], list[Problem]]
CHECKS: dict[str, Checker] = {}


def checks(*kinds: str) -> Callable[[Checker], Checker]:
    def register(fn: Checker) -> Checker:
        for k in kinds:
            CHECKS[k] = fn
        return fn

    return register


def check_refs(steps: list[Any], plan: Plan, src: Located) -> list[Problem]:
    r = Refs(plan, src)
    out: list[Problem] = []
    for st in steps:
        where = ("steps", st.index, st.kind)
        out += _hosts(r, st.params, where)
        out += _server(r, st.kind, st.params, where)
        out += _label(r, st.kind, st.params, where)
        if st.kind in CHECKS:
            out += CHECKS[st.kind](r, st.params, where)
    return out


def _hosts(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    out = []
    for key in ("on", "node", "name"):
        ref = getattr(s, key, None)
        if ref is None:
            continue
        if ref in r.nodes and ref not in r.hosts:
            out.append(
                r.p(
                    where + (key,),
                    f"'{ref}' is a {r.nodes[ref].role}: steps run on hosts",
                    "name a host, e.g. " + ", ".join(r.hosts[:3]),
                )
            )
        elif ref not in r.hosts:
            out.append(r.p(where + (key,), f"unknown node '{ref}'", suggest(ref, r.hosts)))
    return out


def _server(r: Refs, kind: str, s: Any, where: PathKey) -> list[Problem]:
    server = getattr(s, "server", None)
    if server is None:
        return []
    node = r.node_named(server)
    if node is None:
        if _is_ip(server):
            return [r.p(where + ("server",), f"no node of the topology has the address {server}")]
        names = [v.fqdn for v in r.nodes.values()] + r.hosts
        return [
            r.p(
                where + ("server",),
                f"'{server}' is neither a node nor a host name of the topology",
                suggest(server, names),
            )
        ]
    port = getattr(s, "port", None) or (FETCH_PORTS.get(s.protocol) if kind == "fetch" else MAIL_PORTS.get(kind))
    if kind not in ("send", "flood", "smtp", "fetch") or node.role == "mail" or port is None:
        return []
    if r.forwards_to(node, port) is not None and r.forwards_to(node, port).role == "mail":  # type: ignore[union-attr]
        return []
    what = "IMAP or POP3 server" if kind == "fetch" else "SMTP server"
    return [
        r.p(
            where + ("server",),
            f"'{server}' is the {node.role} node '{node.name}': it runs no {what}"
            + (f" and forwards no port {port}" if node.role == "firewall" else ""),
            "name a mail node: " + ", ".join(n.fqdn for n in r.nodes.values() if n.role == "mail")
            if any(n.role == "mail" for n in r.nodes.values())
            else "the topology has no mail node",
        )
    ]


def _label(r: Refs, kind: str, s: Any, where: PathKey) -> list[Problem]:
    out = []
    if kind in ("send", "flood", "webmail", "invite", "agent") and getattr(s, "message", None):
        if s.message in r.labels:
            out.append(r.p(where + ("message",), f"label '{s.message}' is used by an earlier send"))
        r.labels.add(s.message)
    elif kind in ("fetch", "expect", "wait_for", "log"):
        label = getattr(s, "message", None)
        if label is not None and label not in r.labels:
            out.append(
                r.p(
                    where + ("message",),
                    f"no earlier send has message label '{label}'",
                    suggest(label, r.labels) if r.labels else "label a send step with 'message'",
                )
            )
    return out


@checks("send", "fetch", "flood")
def _login(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    out = []
    if s.login is not None and s.password is None and r.plan.user(s.login) is None:
        out.append(
            r.p(
                where + ("login",),
                f"'{s.login}' is not a user of the topology",
                "give 'password' too, or add the user under domains",
            )
        )
    if getattr(s, "to", None) is not None and getattr(s, "login", 1) is None and getattr(s, "sender", 1) is None:
        out.append(r.p(where, "a send without 'login' needs 'from'"))
    return out


@checks("flush", "log")
def _mail_node(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    if s.node in r.nodes and r.nodes[s.node].role != "mail":
        return [r.p(where + ("node",), f"'{s.node}' is not a mail node")]
    return []


@checks("wait_for")
def _wait_for(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    out = []
    if s.condition in ("deferred", "queue_empty") and s.node in r.nodes and r.nodes[s.node].role != "mail":
        out.append(r.p(where + ("node",), f"'{s.node}' is not a mail node"))
    if s.mailbox and r.plan.user(s.mailbox) is None:
        out.append(r.p(where + ("mailbox",), f"'{s.mailbox}' is not a mailbox of the topology"))
    return out + _target(r, s, where)


@checks("expect")
def _expect(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    if r.plan.user(s.mailbox) is None:
        return [r.p(where + ("mailbox",), f"'{s.mailbox}' is not a mailbox of the topology")]
    return []


@checks("firewall_matrix")
def _matrix(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    if s.node not in r.plan.firewalls:
        return [
            r.p(
                where + ("node",),
                f"'{s.node}' is not a firewall with a policy",
                suggest(s.node, list(r.plan.firewalls)),
            )
        ]
    return []


@checks("link", "impair")
def _link(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    out = [
        r.p(where + (end,), f"unknown node '{getattr(s, end)}'", suggest(getattr(s, end), list(r.nodes)))
        for end in ("a", "b")
        if getattr(s, end) not in r.nodes
    ]
    links = r.plan.topology.data.links
    if s.a in r.nodes and s.b in r.nodes and not any({lk.a, lk.b} == {s.a, s.b} for lk in links):
        out.append(r.p(where, f"there is no link between '{s.a}' and '{s.b}'"))
    return out


def _target(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    to = getattr(s, "to", None)
    if (
        to is None
        or r.plan.node_by_fqdn(to) is not None
        or _is_ip(to)
        or (r.plan.node_by_fqdn(to.split(".")[0]) and "." in to)
    ):
        return []
    return [r.p(where + ("to",), f"'{to}' is neither a node, a host name nor an address", suggest(to, r.hosts))]


checks("ping", "probe", "rtt")(_target)


@checks("path")
def _path(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    out = _target(r, s, where)
    for j, name in enumerate(s.via or []):
        if name not in r.nodes or not r.nodes[name].forwards:
            out.append(
                r.p(
                    where + ("via", j),
                    f"'{name}' is not a router of the topology",
                    suggest(name, [n.name for n in r.plan.routers()]),
                )
            )
    return out


@checks("sniff")
def _sniff(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    return [
        r.p(where + ("between", j), f"unknown node '{h}'", suggest(h, r.hosts))
        for j, h in enumerate(s.between)
        if h not in r.hosts
    ]


@checks("service")
def _daemon(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    node = r.nodes.get(s.node)
    if node is None:
        return []
    roles = DAEMONS[s.daemon]
    extra = {"apache2": "webmail", "radicale": "calendar", "sshd": "ssh"}.get(s.daemon)
    if extra and (extra in r.plan.topology.data.nodes[s.node].services or node.role == extra):
        return []
    if node.role not in roles or extra:
        return [
            r.p(
                where + ("daemon",),
                f"'{s.node}' ({node.role}) runs no {s.daemon}",
                f"{s.daemon} runs on: " + ", ".join(n.name for n in r.nodes.values() if n.role in roles),
            )
        ]
    if s.daemon == "frr" and r.plan.topology.routing.mode == "static":
        return [r.p(where + ("daemon",), "routing is static: no FRR runs in this topology")]
    host = r.plan.mail.get(s.node)
    missing = {
        "rspamd": (host is not None and not host.filtering, "security.filtering is off"),
        "clamd": (host is not None and not host.filtering, "security.filtering is off"),
        "fail2ban": (host is not None and not host.fail2ban, "security.fail2ban is off"),
        "starttls-strip": (
            r.plan.topology.data.nodes[s.node].middlebox != "starttls-strip",
            f"'{s.node}' has no 'middlebox: starttls-strip'",
        ),
    }.get(s.daemon, (False, ""))
    if missing[0]:
        return [r.p(where + ("daemon",), f"'{s.node}' runs no {s.daemon}: {missing[1]}")]
    return []


@checks("bruteforce", "scan")
def _target_server(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    node = r.node_named(s.server)
    if node is None:
        return []  # _server said so
    if getattr(s, "protocol", None) is not None and node.role != "mail":
        return [r.p(where + ("server",), f"'{s.server}' is not a mail node: it takes no logins")]
    out = []
    for j, port in enumerate(getattr(s, "ports", [])):
        fwd = r.forwards_to(node, port)
        if port not in listens(r.plan, node.name) and not (fwd is not None and port in listens(r.plan, fwd.name)):
            out.append(r.p(where + ("ports", j), f"nothing on '{s.server}' listens on port {port}"))
    return out


def _runs(r: Refs, where: PathKey, ref: str, service: str, what: str) -> list[Problem]:
    """The node named ``ref`` (name, host name or address) runs ``service``."""
    node = r.node_named(ref)
    if node is None:
        return []  # _server or _target already said so
    data = r.plan.topology.data.nodes[node.name]
    if service in data.services or node.role == service:
        return []
    having = [n for n, v in r.plan.topology.data.nodes.items() if service in v.services or v.role == service]
    return [
        r.p(
            where,
            f"'{ref}' ({node.name}) runs no {what}",
            f"{what} runs on: " + ", ".join(having) if having else f"give a node services: [{service}]",
        )
    ]


def _users(r: Refs, where: PathKey, addresses: list[str], password: str | None = None) -> list[Problem]:
    return [
        r.p(where, f"'{a}' is not a user of the topology", "add the user under domains")
        for a in addresses
        if password is None and r.plan.user(a) is None
    ]


@checks("webmail")
def _webmail(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    out = _runs(r, where + ("server",), s.server, "webmail", "webmail (Roundcube)")
    out += _users(r, where + ("login",), [s.login], s.password)
    if s.read is not None and s.read not in r.labels:
        out.append(
            r.p(where + ("read",), f"no earlier step sent a message labelled '{s.read}'", suggest(s.read, r.labels))
        )
    if s.message is not None and not s.to:
        out.append(r.p(where + ("message",), "a label names a message this step sends: give 'to' too"))
    return out


@checks("certificate")
def _certificate(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    node = r.nodes.get(s.node)
    if node is None:
        return []
    data = r.plan.topology.data.nodes[s.node]
    if not ({443, 993, 587, 5232} & listens(r.plan, s.node)):
        return [r.p(where + ("node",), f"'{s.node}' serves no TLS: it has no certificate to show")]
    if s.renew and data.certificate != "acme":
        return [
            r.p(
                where + ("renew",),
                f"'{s.node}'s certificate does not come from ACME: certbot has nothing to renew",
                "give the node certificate: acme (and an acme node)",
            )
        ]
    return []


@checks("tls")
def _tls(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    node = r.node_named(s.server)
    if node is None or s.port in listens(r.plan, node.name):
        return []
    return [r.p(where + ("port",), f"nothing on '{node.name}' listens on port {s.port}")]


@checks("ssh")
def _ssh(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    out = _target(r, s, where) + _runs(r, where + ("to",), s.to, "ssh", "ssh")
    admins = list(r.plan.topology.data.admins)
    if s.user not in admins:
        out.append(
            r.p(
                where + ("user",),
                f"'{s.user}' is not an admin of the topology",
                suggest(s.user, admins) or ("admins: " + ", ".join(admins) if admins else "add admins to the topology"),
            )
        )
    if s.expect == "ok" and s.auth == "password":
        out.append(r.p(where + ("expect",), "ssh is key-only here: a password login can only be refused"))
    return out


@checks("invite", "agent", "calendar")
def _meeting(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    out = _runs(r, where + ("server",), s.server, "calendar", "calendar (Radicale)")
    mail = getattr(s, "mail_server", None)
    if mail is not None:
        node = r.node_named(mail)
        if node is None:
            out.append(r.p(where + ("mail_server",), f"'{mail}' is neither a node nor a host name of the topology"))
        elif node.role != "mail":
            out.append(
                r.p(where + ("mail_server",), f"'{mail}' is the {node.role} node '{node.name}': it runs no mail")
            )
    if isinstance(s, Invite):
        out += _users(r, where + ("organizer",), [s.organizer], s.password)
        out += [p for j, a in enumerate(s.attendees) for p in _users(r, where + ("attendees", j), [a])]
    else:
        out += _users(r, where + ("login",), [s.login], s.password)
    meeting = getattr(s, "meeting", None)
    if meeting is not None and meeting not in r.labels:
        out.append(r.p(where + ("meeting",), f"no earlier invite has label '{meeting}'", suggest(meeting, r.labels)))
    return out


def check_wire(w: Wire, plan: Plan, src: Located) -> list[Problem]:
    r = Refs(plan, src)
    out = []
    subnets = set(plan.topology.subnets)
    for i, pth in enumerate(w.path):
        where: PathKey = ("wire", "path", i)
        for key, ref in (("from", pth.from_), ("to", pth.to)):
            if ref not in r.nodes or r.nodes[ref].role == "switch":
                out.append(r.p(where + (key,), f"unknown node '{ref}'", suggest(ref, list(r.nodes))))
        for j, item in enumerate(pth.via):
            if item not in subnets and not (item in r.nodes and r.nodes[item].forwards):
                out.append(
                    r.p(
                        where + ("via", j),
                        f"'{item}' is neither a subnet nor a router",
                        suggest(item, sorted(subnets) + [n.name for n in plan.routers()]),
                    )
                )
    if w.nat is not None and (w.nat.node not in r.nodes or not r.nodes[w.nat.node].forwards):
        out.append(
            r.p(
                ("wire", "nat", "node"),
                f"'{w.nat.node}' is not a router or firewall",
                suggest(w.nat.node, [n.name for n in plan.routers()]),
            )
        )
    if w.dhcp is not None and isinstance(w.dhcp.clients, list):
        dhcp_hosts = [n.name for n in r.nodes.values() if n.dhcp]
        for j, c in enumerate(w.dhcp.clients):
            if c not in dhcp_hosts:
                out.append(r.p(("wire", "dhcp", "clients", j), f"'{c}' is not a DHCP host", suggest(c, dhcp_hosts)))
    out += _wire_proxied(r, w)
    out += _wire_tunnel(r, w)
    if w.tls is not None:
        listening = {port for n in r.nodes for port in listens(plan, n)}
        for j, port in enumerate(w.tls.ports):
            if port not in listening:
                out.append(
                    r.p(
                        ("wire", "tls", "ports", j),
                        f"nothing in this topology listens on port {port}: a TLS check there could only pass",
                        "ports served here: " + ", ".join(map(str, sorted(listening)))
                        if listening
                        else "the topology runs no mail or DNS server",
                    )
                )
    return out


def _wire_proxied(r: Refs, w: Wire) -> list[Problem]:
    out = []
    for i, p in enumerate(w.proxied):
        for key, role in (("client", None), ("proxy", "proxy"), ("server", "web")):
            ref = getattr(p, key)
            node = r.nodes.get(ref)
            if node is None or node.role == "switch":
                out.append(r.p(("wire", "proxied", i, key), f"unknown node '{ref}'", suggest(ref, r.hosts)))
            elif role is not None and node.role != role:
                out.append(r.p(("wire", "proxied", i, key), f"'{ref}' is a {node.role}, not a {role} node"))
    return out


def _wire_tunnel(r: Refs, w: Wire) -> list[Problem]:
    out = []
    vpns = r.plan.topology.data.vpns
    names = {f"{lk.a}-{lk.b}" for lk in r.plan.topology.data.links}
    for i, t in enumerate(w.tunnel):
        if t.vpn not in vpns:
            out.append(r.p(("wire", "tunnel", i, "vpn"), f"no vpn '{t.vpn}' in the topology", suggest(t.vpn, vpns)))
        for j, link in enumerate(t.links):
            if link not in names:
                out.append(r.p(("wire", "tunnel", i, "links", j), f"no link '{link}'", suggest(link, names)))
    return out


def _is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False
