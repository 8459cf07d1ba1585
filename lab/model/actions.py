"""The actions a scenario step can take and the wire assertions, as validated data.

Each model checks its own fields; cross-references to the topology (hosts, users,
labels) are checked by ``lab.model.scenario``.  ``title()`` names a step that the
scenario does not name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lab.model.policy import PortNumber, SinglePort
from lab.model.schema import Strict
from lab.model.server_actions import *  # noqa: F403  (the server's step models, re-exported)
from lab.model.server_actions import SERVER_ACTIONS, ServerAction
from lab.model.text import Address, Body, DelayText, FileName, Line, Name, Url
from lab.model.wire import Wire, WireDhcp, WireNat, WirePath, WireProxied, WireSuites, WireTls, WireTunnel

# the wire models and text types are re-exported: scenarios name them all as lab.model.scenario.X
__reexported__ = (
    Address,
    Body,
    Line,
    Name,
    Wire,
    WireDhcp,
    WireNat,
    WirePath,
    WireProxied,
    WireSuites,
    WireTls,
    WireTunnel,
)

#: which daemons a `service` step may stop or start, and the roles they run on
#: (lab.services.registry holds the classes; a unit test keeps both lists the same)
DAEMONS: dict[str, tuple[str, ...]] = {
    "postfix": ("mail",),
    "dovecot": ("mail",),
    "named": ("dns",),
    "kea-dhcp4": ("dhcp",),
    "frr": ("router", "firewall"),
    "nftables": ("firewall",),
    "rspamd": ("mail",),
    "clamd": ("mail",),
    "fail2ban": ("mail",),
    "starttls-strip": ("router", "firewall"),
    "squid": ("proxy",),
    "nginx": ("web",),
    "openvpn": ("router", "firewall", "host"),
    "pebble": ("acme",),
    "apache2": ("webmail", "mail"),
    "radicale": ("mail", "webmail"),
    "sshd": ("mail", "webmail", "dns", "dhcp", "router", "firewall", "host", "acme"),
}


class Action(Strict):
    """A step's parameters; ``title()`` names the step when the scenario gives no name."""

    def title(self) -> str:
        return type(self).__name__.lower()


class Reject(Strict):
    """An expected refusal: the server must answer with this code at this stage."""

    code: int = Field(ge=200, le=599)
    stage: Literal["connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data"] | None = None
    says: Line | None = Field(None, description="text the refusal must contain, e.g. 'Gtube pattern' (why it refused)")


class Attachment(Strict):
    """A file attached to a message (application/octet-stream), e.g. the EICAR test file."""

    name: FileName = Field(description="its file name, e.g. invoice.pdf")
    text: Body = Field(description="its content, as text")


class Send(Action):
    """Submit one message with a real SMTP client (aiosmtplib) from a host."""

    on: Name
    server: Name = Field(description="host name or node name of the SMTP server")
    port: PortNumber = 587
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    login: Address | None = Field(None, description="SASL login (a mailbox address); omit for no AUTH")
    password: Line | None = Field(None, description="default: the user's password from the topology")
    sender: Address | None = Field(None, alias="from", description="envelope and header From (default: login)")
    to: list[Address] = Field(min_length=1, max_length=1000)
    subject: Line = "mail-lab test message"
    body: Body = "Hello from mail-lab.\n"
    attach: list[Attachment] = Field(default_factory=list, max_length=10, description="files attached to the message")
    message: Name | None = Field(None, description="a label later steps use to refer to this message")
    reject: Reject | None = Field(None, description="expect the server to refuse (negative test)")
    timeout: float = Field(20, gt=0, le=600)

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: send {s.message or ''} {s.sender or s.login or ''} -> {', '.join(s.to)} via {s.server}:{s.port}".replace(
            "  ", " "
        )


class Fetch(Action):
    """Fetch a mailbox over IMAPS/POP3S (or plain with STARTTLS) and find a message."""

    on: Name
    server: Name
    protocol: Literal["imaps", "pop3s", "imap", "pop3"] = "imaps"
    port: PortNumber | None = None
    login: Address
    password: Line | None = None
    message: Name | None = Field(None, description="label of a sent message that must be there")
    count: int | None = Field(None, ge=0, description="exact number of messages expected")
    reject: bool = Field(False, description="expect the login to be refused")
    plaintext: bool = Field(False, description="imap/pop3: log in without STARTTLS (a server must refuse)")
    timeout: float = Field(20, gt=0, le=600)

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: fetch {s.login} over {s.protocol} from {s.server}"


class Dns(Action):
    """Resolve a name from a host with dnspython, through that host's own resolver."""

    on: Name
    query: Name
    type: Literal["A", "AAAA", "MX", "NS", "PTR", "SOA", "CNAME", "TXT", "TLSA", "DNSKEY", "DS"] = "A"
    server: Name | None = Field(None, description="ask this server instead of the host's resolv.conf")
    expect: list[Line] | None = Field(None, description="the exact set of answers (text form)")
    contains: Line | None = Field(None, description="some answer holds this text (a key made per run, say)")
    rcode: Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"] = "NOERROR"
    validated: bool | None = Field(
        None, description="true: the answer carries the AD bit (DNSSEC-validated); false: it must not"
    )

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: dns {s.type} {s.query}"


class Expect(Action):
    """Check a mailbox on the mail node's disk (the Maildir Dovecot wrote)."""

    mailbox: Address
    count: int | None = Field(None, ge=0)
    message: Name | None = None
    headers: dict[Name, Line] = Field(default_factory=dict)
    header_has: dict[Name, list[Line]] = Field(
        default_factory=dict,
        description="header: texts it must contain (whitespace folded), e.g. Authentication-Results: [dkim=pass]",
    )

    @model_validator(mode="after")
    def _something(self) -> "Expect":
        if self.count is None and self.message is None and not self.headers and not self.header_has:
            raise ValueError("an expect step needs at least one of count, message, headers")
        return self

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"expect mailbox {s.mailbox}"


class WaitFor(Action):
    """Wait until a condition holds, polling, up to a timeout (never a bare sleep)."""

    condition: Literal[
        "delivered",
        "queue_empty",
        "port_open",
        "converged",
        "reachable",
        "path",
        "stp_stable",
        "ospf_full",
        "deferred",
    ]
    count: int | None = Field(None, ge=1, description="delivered: this many messages of the label (a flood)")
    mailbox: Address | None = None
    message: Name | None = None
    node: Name | None = None
    on: Name | None = None
    port: PortNumber | None = None
    to: Name | None = Field(None, description="reachable, path: the node, host name or address to reach")
    via: list[Name] | None = Field(None, description="path: the routers a trace must cross, in order")
    hold: float = Field(0, ge=0, le=600, description="the condition must stay true this long (s): routing has settled")
    timeout: float = Field(15, gt=0, le=3600)

    @model_validator(mode="after")
    def _fields(self) -> "WaitFor":
        need = {
            "delivered": ("mailbox",),
            "queue_empty": ("node",),
            "port_open": ("on", "node", "port"),
            "converged": (),
            "reachable": ("on", "to"),
            "path": ("on", "to", "via"),
            "stp_stable": (),
            "ospf_full": (),
            "deferred": ("node", "message"),
        }
        missing = [k for k in need[self.condition] if getattr(self, k) is None]
        if missing:
            raise ValueError(f"condition '{self.condition}' needs: " + ", ".join(missing))
        return self

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        if s.condition == "path":
            return f"wait for the path {s.on} -> {s.to} via {', '.join(s.via or [])}"
        return f"wait for {s.condition}" + (f" {s.on} -> {s.to}" if s.condition == "reachable" else "")


class Ping(Action):
    """ICMP echo from a host: loss and round-trip times."""

    on: Name
    to: Name = Field(description="a node, a host name or an address")
    count: int = Field(5, ge=1, le=10000)
    interval: float = Field(0.2, ge=0.002, le=10)
    expect: Literal["reachable", "unreachable"] = "reachable"
    max_loss: float = Field(0, ge=0, le=100, description="reachable: the highest loss (%) that still passes")
    size: int | None = Field(None, ge=0, le=65000)

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: ping {s.to} ({s.expect})"


class Rtt(Action):
    """Measure the round-trip time to a node (ping) and compare it with what the
    topology's link delays add up to along the path the packets take."""

    on: Name
    to: Name = Field(description="a node, a host name or an address")
    count: int = Field(20, ge=3, le=1000)
    interval: float = Field(0.05, ge=0.01, le=10)
    expect: DelayText | Literal["auto"] = Field(
        "auto",
        description="the round trip expected, e.g. '80ms'; auto: twice the delays of the links on the traced path",
    )
    tolerance: float = Field(10, gt=0, le=100, description="percent of the expected round trip the median may differ")
    slack_ms: float = Field(
        1.0,
        ge=0,
        le=1000,
        description="milliseconds the median may always differ, whatever the percentage (a busy machine's scheduling noise)",
    )

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: round trip to {s.to} ({'the links delays' if s.expect == 'auto' else s.expect} +-{s.tolerance:g}%)"


class Http(Action):
    """Fetch a page with a real HTTP client from a host: directly, or through a proxy
    (plain HTTP as a proxy request, HTTPS through CONNECT); TLS verified against the lab CA."""

    on: Name
    url: Url = Field(description="http://host/path or https://host/path (host: a node's name or alias)")
    proxy: Name | None = Field(None, description="a proxy node (or its host name); omit to connect directly")
    proxy_port: PortNumber = 3128
    expect: Literal["ok", "blocked", "unreachable"] = Field(
        "ok", description="ok: a 2xx page; blocked: the proxy refused it (403); unreachable: no connection at all"
    )
    contains: Line | None = Field(None, description="ok: text the page must hold")
    timeout: float = Field(8, gt=0, le=120)

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: GET {s.url}" + (f" via {s.proxy}" if s.proxy else " directly") + f" ({s.expect})"


class PathStep(Action):
    """The routers a packet crosses (TTL probing, like traceroute)."""

    on: Name
    to: Name
    via: list[Name] | None = Field(None, description="the expected routers, in order (node names)")
    max_hops: int = Field(16, ge=1, le=64)

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: path to {s.to}" + (f" via {', '.join(s.via)}" if s.via else "")


class LinkState(Action):
    """Take a link down or up at both ends, like pulling or plugging a cable."""

    a: Name
    b: Name
    state: Literal["down", "up"]

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"link {s.a}-{s.b} {s.state}"


class NodeState(Action):
    """Take every interface of a node down (it vanishes from the network) or up again."""

    name: Name
    state: Literal["down", "up"]

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"node {s.name} {s.state}"


class ServiceState(Action):
    """Stop or start a daemon on a node (fault labs: the DNS server or Dovecot is down)."""

    node: Name
    daemon: Literal[
        "postfix",
        "dovecot",
        "named",
        "kea-dhcp4",
        "frr",
        "nftables",
        "rspamd",
        "clamd",
        "fail2ban",
        "starttls-strip",
        "squid",
        "nginx",
        "openvpn",
        "pebble",
        "apache2",
        "radicale",
        "sshd",
    ]
    state: Literal["stop", "start"]

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.node}: {s.state} {s.daemon}"


class Probe(Action):
    """Is a port open, closed or filtered from a given host?"""

    on: Name
    to: Name
    port: PortNumber
    proto: Literal["tcp", "udp"] = "tcp"
    expect: Literal["open", "closed", "filtered"]
    listen: bool = Field(
        False, description="open a listener on the target for the probe (tests the path, not a daemon)"
    )
    timeout: float = Field(
        1.5,
        gt=0,
        le=30,
        description="seconds without an answer that make a port filtered (more than 1 s: a first SYN that is"
        " lost is sent again after 1 s; a probe that expects filtered may wait less)",
    )

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: probe {s.proto}/{s.port} on {s.to} ({s.expect})"


class Routes(Action):
    """Show a node's routing table in the report; optionally check one route."""

    on: Name
    to: Name | None = Field(None, description="a destination network (CIDR) that must be in the table")
    via: Name | None = Field(None, description="...through this next hop (an address or a node name)")
    protocol: Literal["kernel", "static", "ospf", "rip", "boot", "dhcp"] | None = Field(
        None, description="...learnt by this protocol: kernel, static, ospf, rip"
    )

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: routes" + (f" to {s.to}" if s.to else "")


class Smtp(Action):
    """A raw SMTP dialogue (EHLO, optional STARTTLS, MAIL FROM, RCPT TO; never DATA):
    relay tests with the classic tricks, and what a server advertises."""

    on: Name
    server: Name
    port: PortNumber = 25
    starttls: bool = False
    mail_from: Line = Field(description="the envelope sender exactly as sent, e.g. '<>' or '<a@b.c>'")
    rcpt: list[Line] = Field(
        default_factory=list, max_length=100, description="recipients exactly as sent, e.g. '<user%other@dom>'"
    )
    expect: Literal["refused", "accepted"] = "refused"
    ehlo_has: list[Name] = Field(default_factory=list, description="extensions the EHLO before TLS must show")
    ehlo_lacks: list[Name] = Field(default_factory=list, description="extensions the EHLO before TLS must not show")

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: smtp {s.server}:{s.port} MAIL FROM:{s.mail_from} RCPT TO:{','.join(s.rcpt)} ({s.expect})"


class Flood(Action):
    """Many messages over several concurrent submission connections (STARTTLS+AUTH)."""

    on: Name
    server: Name
    port: PortNumber = 587
    login: Address
    password: Line | None = None
    to: list[Address] = Field(min_length=1, max_length=100)
    count: int = Field(ge=1, le=100000)
    connections: int = Field(4, ge=1, le=64)
    message: Name = Field(description="label of the batch (wait_for delivered with count)")
    subject: Line = "mail-lab flood"
    body: Body = "One of many.\n"
    timeout: float = Field(300, gt=0, le=3600)

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: {s.count} messages over {s.connections} connection(s) to {', '.join(s.to)}"


class BruteForce(Action):
    """Guess a password over and over from one host, a new connection each time, until
    the server stops answering (a ban) or the guesses run out."""

    on: Name
    server: Name = Field(description="the mail node (name or host name)")
    protocol: Literal["submission", "imaps", "pop3s"] = "submission"
    login: Address
    attempts: int = Field(8, ge=1, le=50)
    expect: Literal["banned", "answered"] = Field(
        description="banned: the server stops answering after some failures; answered: every guess got an answer"
    )
    timeout: float = Field(120, gt=0, le=600)

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: {s.attempts} password guesses for {s.login} over {s.protocol} ({s.expect})"


class Scan(Action):
    """A real TLS scanner (sslscan) from a host against server ports: protocols and suites
    offered, and the verdict of the server's TLS policy on each port."""

    on: Name
    server: Name
    ports: list[PortNumber] = Field(min_length=1, max_length=16)
    policy: Literal["intermediate"] = "intermediate"
    expect: Literal["holds", "broken"] = Field("holds", description="broken: the scanner must find a weakness")
    timeout: float = Field(120, gt=0, le=600)

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: sslscan {s.server} on {', '.join(map(str, s.ports))} ({s.policy} {s.expect})"


class Flush(Action):
    """Ask a mail node to retry its deferred mail now (postqueue -f)."""

    node: Name

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.node}: flush the mail queue"


class Log(Action):
    """Check a daemon's log lines about a message (its queue ids on that node)."""

    node: Name
    message: Name
    contains: Line | None = None
    absent: Line | None = Field(None, description="e.g. 'status=deferred': the message was never deferred here")

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.node}: log of message {s.message}"


class Impair(Action):
    """Change a link's loss while the lab runs (nftables random drop, or netem where present)."""

    a: Name
    b: Name
    loss: float = Field(ge=0, le=100, description="percent, each direction; 0 removes it")

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"link {s.a}-{s.b}: loss {s.loss:g}%"


class FirewallMatrix(Action):
    """Probe every (source zone, destination zone, port) through a firewall and compare
    with its allow rules (what the policy means, not what the ruleset happens to do)."""

    node: Name
    ports: list[SinglePort] = Field(min_length=1, max_length=64, description="tcp/25, udp/53 ...")
    timeout: float = Field(1.0, gt=0, le=10)

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"firewall matrix of {s.node} on {', '.join(map(str, s.ports))}"


class Sniff(Action):
    """Capture on a bystander while two other hosts ping each other: does it see them?"""

    on: Name
    between: list[Name] = Field(min_length=2, max_length=2)
    count: int = Field(5, ge=1, le=1000)
    expect: Literal["seen", "not_seen"]

    def title(self) -> str:
        """The step's name in reports when the scenario gives none."""
        s = self
        return f"{s.on}: sniff {s.between[0]} <-> {s.between[1]} ({s.expect.replace('_', ' ')})"


ACTIONS: dict[str, type[Action] | type[ServerAction]] = {
    "send": Send,
    "fetch": Fetch,
    "dns": Dns,
    "expect": Expect,
    "wait_for": WaitFor,
    "ping": Ping,
    "path": PathStep,
    "link": LinkState,
    "node": NodeState,
    "service": ServiceState,
    "probe": Probe,
    "routes": Routes,
    "sniff": Sniff,
    "smtp": Smtp,
    "flood": Flood,
    "flush": Flush,
    "bruteforce": BruteForce,
    "scan": Scan,
    "log": Log,
    "firewall_matrix": FirewallMatrix,
    "impair": Impair,
    "rtt": Rtt,
    "http": Http,
    **SERVER_ACTIONS,
}
