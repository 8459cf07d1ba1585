"""Topology files: the network and its services as data.

A topology names subnets, nodes (with a role), links, and mail domains with their
users.  This module holds the models (what a file may say) and ``Topology`` (a checked
file with its wiring); ``lab.model.load`` reads and checks files, ``lab.model.plan``
derives what the services need.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from lab.model.policy import ROUTING_ROLES, FirewallPolicy, Routing
from lab.model.proxyvpn import Label, ProxyPolicy, Vpn
from lab.model.schema import Strict, hinted
from lab.model.text import _one_line
from lab.model.yamlload import Located

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,14}")
DOMAIN_RE = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
USER_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

Role = Literal["host", "switch", "mail", "dns", "dhcp", "router", "firewall", "proxy", "web", "webmail", "acme"]
BUILDABLE_ROLES = ("host", "switch", "mail", "dns", "dhcp", "router", "firewall", "proxy", "web", "webmail", "acme")
SERVICE_ROLES = ("mail", "dns", "dhcp", "proxy", "web", "webmail", "acme")
#: what a node may run besides its role's daemons (``services:``): Roundcube (Apache),
#: OpenSSH's server, the CalDAV server (Radicale)
NodeService = Literal["webmail", "ssh", "calendar"]
#: where a node's TLS certificate comes from: the run's lab CA, the lab's ACME CA (certbot),
#: or one of the teaching variants clients must refuse
CertificateSource = Literal["lab-ca", "acme", "expired", "wrong-name", "self-signed"]
#: a Unix account name for an SSH administrator (not one of the machine's system accounts)
ADMIN_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MAX_NODES = 2000  # what one 2-core machine builds in about a minute
MAX_LINKS = 20000
MAX_SUBNETS = 20000

__all__ = [
    "ADMIN_RE",
    "DOMAIN_RE",
    "MIDDLEBOXES",
    "NAME_RE",
    "ROUTING_ROLES",
    "USER_RE",
    "MailSecurity",
    "Topology",
    "TopologyFile",
]


def _ipv4(value: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        raise ValueError(hinted(f"'{value}' is not an IPv4 address", f"{what} looks like 10.0.0.10")) from None


class DhcpPool(Strict):
    server: str
    pool: str = Field(description="first-last address, e.g. 10.0.0.100-10.0.0.199")
    lease_time: int = Field(3600, ge=60, le=604800)

    @field_validator("pool")
    @classmethod
    def _pool(cls, v: str) -> str:
        parts = str(v).split("-")
        if len(parts) != 2:
            raise ValueError(hinted(f"pool '{v}' is not a range", "write it as 10.0.0.100-10.0.0.199"))
        a, b = (_ipv4(p.strip(), "each end of the pool") for p in parts)
        if int(b) < int(a):
            raise ValueError(hinted(f"pool '{v}' ends before it starts", "put the lower address first"))
        return f"{a}-{b}"

    @property
    def bounds(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        a, b = self.pool.split("-")
        return ipaddress.IPv4Address(a), ipaddress.IPv4Address(b)


def parse_cidr(v: str) -> str:
    """A subnet in CIDR form, /30 or larger."""
    try:
        net = ipaddress.IPv4Network(str(v), strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            fixed = ipaddress.IPv4Network(str(v), strict=False)
            raise ValueError(hinted(f"'{v}' has host bits set", f"the network is {fixed}")) from None
        raise ValueError(hinted(f"'{v}' is not an IPv4 network in CIDR form", "write it as 10.0.0.0/24")) from None
    if net.prefixlen > 30:
        raise ValueError(hinted(f"'{v}' is too small for a LAN", "use a /30 or larger"))
    return str(net)


class Subnet(Strict):
    cidr: str
    gateway: str | None = None
    dhcp: DhcpPool | None = None

    _cidr = field_validator("cidr")(lambda cls, v: parse_cidr(v))

    @field_validator("gateway")
    @classmethod
    def _gw(cls, v: str | None) -> str | None:
        return None if v is None else str(_ipv4(v, "the gateway"))

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)


Setting = str | int | bool


def _settings(v: dict[str, Setting]) -> dict[str, str]:
    """YAML gives numbers and yes/no as such: a daemon setting is their text."""
    return {str(k): ("yes" if x else "no") if isinstance(x, bool) else str(x) for k, x in v.items()}


class MailConfig(Strict):
    """Change a mail node's configuration: what a student edits, or a deliberately
    weakened server for a negative test.  Applied after the shipped templates; every
    setting is checked as data first (``lab.model.mailconfig``)."""

    postfix: dict[str, Setting] = Field(default_factory=dict, description="main.cf parameters (postconf -e)")
    postfix_master: dict[str, Setting] = Field(
        default_factory=dict,
        description="master.cf service parameters: 'submission/inet/smtpd_tls_security_level': may",
    )
    dovecot: dict[str, Setting] = Field(default_factory=dict, description="dovecot.conf settings, e.g. ssl: 'yes'")

    _norm = field_validator("postfix", "postfix_master", "dovecot")(_settings)

    def sections(self) -> dict[str, dict[str, str]]:
        """The settings as text (the validator already made every value a string)."""
        return {
            name: {k: str(v) for k, v in getattr(self, name).items()}
            for name in ("postfix", "postfix_master", "dovecot")
        }


class MailSecurity(Strict):
    """How far the lab's mail can be trusted: authenticity, filtering, DNSSEC and DANE or MTA-STS, bans.

    Every protection here is one the reference server has; a weakened companion topology
    turns them off to show the harm (docs/labs/attacks.md)."""

    filtering: bool = Field(
        False,
        description="rspamd as the milter of every mail node: DKIM signing with a key made per run, SPF, DKIM "
        "and DMARC checked on receipt (Authentication-Results), GTUBE refused, ClamAV with the lab's own "
        "signatures (EICAR refused at SMTP time); SPF and DMARC records published",
    )
    dmarc: Literal["reject", "quarantine", "none"] = Field("reject", description="the DMARC policy published")
    dnssec: bool = Field(False, description="BIND signs every zone; resolvers validate against the lab root's key")
    dane: bool = Field(
        False,
        description="TLSA records for every MX and smtp_tls_security_level = dane where the resolver validates",
    )
    mta_sts: bool = Field(
        False,
        description="MTA-STS (RFC 8461) where DNSSEC is not used: every mail domain publishes "
        "_mta-sts TXT and an enforce policy over HTTPS (https://mta-sts.<domain>/.well-known/mta-sts.txt, "
        "served by its MX with a lab-CA certificate); every mail node asks mta-sts-daemon before it relays",
    )
    fail2ban: bool = Field(False, description="fail2ban bans a source after failed logins (submission, IMAP, POP3)")
    maxretry: int = Field(3, ge=1, le=100, description="fail2ban: failures before a ban")
    tls_policy: Literal["intermediate", "legacy"] = Field(
        "intermediate",
        description="intermediate: Mozilla's profile where TLS is required (465, 587, 993, 995): TLS 1.2+, "
        "AEAD suites only; legacy: the daemons' defaults",
    )


MIDDLEBOXES = ("starttls-strip",)


class Node(Strict):
    role: Role
    address: str | None = Field(None, description="an IPv4 address in the node's subnet, or 'dhcp'")
    interfaces: dict[str, str] | None = Field(
        None, description="routers and firewalls: the address on each subnet they join (subnet name: address)"
    )
    subnet: str | None = Field(None, description="switches only: the subnet this switch carries")
    hub: bool = Field(False, description="switches only: flood every frame to every port, like a hub or a bus")
    stp: bool = Field(False, description="switches only: run the spanning tree protocol (for L2 rings)")
    domain: str | None = Field(None, description="DNS domain of this node's name (default: the topology's)")
    description: str | None = None
    config: MailConfig | None = Field(None, description="mail nodes: settings that replace the shipped ones")
    user: str | None = Field(
        None,
        max_length=320,
        description="hosts: the mail account of the person at this host (user@domain, a user of `domains`); "
        "its mail programs (s-nail, swaks) are set up for it. Default: the users of the host's domain in turn",
    )
    middlebox: Literal["starttls-strip"] | None = Field(
        None,
        description="routers only: an attacker's box on the path; starttls-strip hides STARTTLS from every "
        "SMTP connection crossing it (a transparent proxy)",
    )
    aliases: list[Label] = Field(
        default_factory=list,
        max_length=20,
        description="more names of this node in its domain (DNS A records), e.g. [www, games] for a web server",
    )
    services: list[NodeService] = Field(
        default_factory=list,
        max_length=3,
        description="more daemons on this node: webmail (Apache + Roundcube), ssh (OpenSSH), calendar (Radicale)",
    )
    certificate: CertificateSource | None = Field(
        None,
        description="where its TLS certificate comes from: lab-ca (default), acme (certbot from the acme node), "
        "or a variant clients refuse: expired, wrong-name, self-signed",
    )
    mail_server: str | None = Field(None, description="webmail nodes: the mail node Roundcube logs into")

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str | None) -> str | None:
        if v is None or v == "dhcp":
            return v
        return str(_ipv4(v, "a static address"))

    @field_validator("interfaces")
    @classmethod
    def _ifaces(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return v
        return {k: str(_ipv4(a, "an interface address")) for k, a in v.items()}


class Link(Strict):
    a: str
    b: str
    subnet: str | None = Field(
        None, description="for a link without a switch: a subnet name or a CIDR like 10.255.0.0/30"
    )
    bw: float | None = Field(None, gt=0, le=100000, description="bandwidth limit in Mbit/s (HTB)")
    loss: float | None = Field(None, ge=0, le=100, description="packet loss in percent, each direction")
    delay: str | None = Field(
        None,
        description="one-way delay, e.g. '20ms' (tc netem where the kernel has it, else the NFQUEUE delay helper)",
    )
    jitter: str | None = Field(
        None, description="random variation of the delay, e.g. '2ms' (uniform +-; the helper never reorders)"
    )
    delay_optional: bool = Field(False, description="build even where the kernel cannot delay (say so, apply nothing)")
    up: bool = Field(True, description="false: the link starts administratively down")

    @field_validator("delay", "jitter")
    @classmethod
    def _delay(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.fullmatch(r"\d{1,6}(\.\d{1,3})?(us|ms|s)", str(v)) or delay_seconds(str(v)) > 10:
            raise ValueError(hinted(f"'{v}' is not a delay", "write it like 20ms (at most 10s)"))
        return str(v)

    @model_validator(mode="after")
    def _jitter(self) -> "Link":
        if self.jitter is None:
            return self
        if self.delay is None:
            raise ValueError(hinted("a jitter needs a delay to vary", f"add delay: (at least {self.jitter})"))
        if delay_seconds(self.jitter) > delay_seconds(self.delay):
            raise ValueError(
                hinted(f"jitter {self.jitter} is larger than the delay {self.delay}", "a delay never goes below zero")
            )
        return self


def delay_seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s)", text)
    if not m:
        return 0.0
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]


class User(Strict):
    password: str = Field(
        min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$", description="no control characters"
    )


class PublicView(Strict):
    """How the outside sees a domain whose servers sit behind NAT (split-horizon DNS)."""

    dns: str = Field(description="the outside DNS node that serves the public copy of this domain")
    address: str = Field(description="the public address of the mail server (the firewall's, with a port forward)")

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        return str(_ipv4(v, "the public address"))


class MailDomain(Strict):
    mail: str = Field(description="the node that is this domain's mail server (its MX)")
    dns: str | None = Field(None, description="the node authoritative for this domain")
    users: dict[str, User] = Field(default_factory=dict)
    public: PublicView | None = Field(None, description="the domain as seen from outside a NAT")


class Admin(Strict):
    """An SSH administrator: a Unix account on every node that runs ssh, key-only."""

    password: Annotated[str, AfterValidator(_one_line)] | None = Field(
        None, min_length=1, max_length=256, description="an account password sshd must refuse (it is key-only)"
    )
    description: str | None = None


class TopologyFile(Strict):
    name: str
    description: str | None = None
    domain: str
    subnets: dict[str, Subnet]
    nodes: dict[str, Node]
    links: list[Link]
    domains: dict[str, MailDomain] = Field(default_factory=dict)
    routing: Literal["static", "ospf", "rip"] | Routing = "static"
    firewalls: dict[str, FirewallPolicy] = Field(default_factory=dict)
    security: MailSecurity = Field(
        default_factory=lambda: MailSecurity.model_validate({}), description="mail authenticity, filtering, DNSSEC"
    )
    proxies: dict[str, ProxyPolicy] = Field(
        default_factory=dict, description="proxy nodes: who may use them, what they refuse"
    )
    vpns: dict[str, Vpn] = Field(default_factory=dict, description="OpenVPN tunnels: site to site, or remote access")
    admins: dict[str, Admin] = Field(default_factory=dict, description="SSH administrators (key-only accounts)")
    params: dict[str, int] = Field(default_factory=dict, description="set by a generator: the sizes used")


@dataclass
class Iface:
    """One interface of a node: ``eth<N>`` on a subnet, with an address, a DHCP lease or none."""

    node: str
    name: str
    subnet: str
    address: str | None  # None: DHCP (hosts) or not yet known
    dhcp: bool
    link: int  # index in links
    peer: str  # the node at the other end (a switch or a node)


class Topology:
    """A validated topology plus where it came from."""

    def __init__(
        self,
        data: TopologyFile,
        src: Located,
        subnets: dict[str, Subnet] | None = None,
        interfaces: dict[str, list[Iface]] | None = None,
    ):
        self.data = data
        self.src = src
        self.path = Path(src.file)
        #: every subnet, including those written as a CIDR on a link
        self.subnets: dict[str, Subnet] = subnets if subnets is not None else dict(data.subnets)
        #: every non-switch node's interfaces, in link order
        self.interfaces: dict[str, list[Iface]] = interfaces or {}

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def routing(self) -> Routing:
        r = self.data.routing
        return Routing.model_validate({"mode": r}) if isinstance(r, str) else r

    def switch_of(self, node: str) -> str:
        itf = self.interfaces[node][0]
        return itf.peer

    def subnet_of(self, node: str) -> str:
        """The subnet of a switch, or of a node's first interface."""
        n = self.data.nodes[node]
        if n.role == "switch":
            assert n.subnet is not None
            return n.subnet
        return self.interfaces[node][0].subnet
