"""Wire assertions as validated data: what the captured packets must prove after the last step.

Each model checks its own fields; references to the topology are checked by
``lab.model.scenario_checks.check_wire``; ``lab.scenario.wire`` proves them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lab.model.policy import PortNumber
from lab.model.schema import Strict
from lab.model.text import Name


class WireTls(Strict):
    """Every flow to these ports used TLS (STARTTLS or implicit), at least this version."""

    min_version: Literal["1.2", "1.3"] = "1.2"
    ports: list[PortNumber] = Field(default_factory=lambda: [25, 465, 587, 110, 995, 143, 993], min_length=1)


class WirePath(Strict):
    """The flow from one node to another's port crossed these subnets and routers, in order."""

    from_: Name = Field(alias="from")
    to: Name
    port: PortNumber
    via: list[Name] = Field(min_length=1, description="subnet names and router names, in the order crossed")


class WireNat(Strict):
    """A flow was seen on both sides of this node with rewritten addresses."""

    node: Name


class WireDhcp(Strict):
    """These DHCP hosts (or all) did DISCOVER, OFFER, REQUEST, ACK on the wire."""

    clients: Literal["all"] | list[Name] = "all"


class WireSuites(Strict):
    """Every TLS flow to these ports: the suites the client offered and the one the server
    chose; the chosen one must hold the policy (TLS 1.2+, AEAD, no aNULL/NULL/EXPORT/RC4/3DES)."""

    ports: list[PortNumber] = Field(default_factory=lambda: [465, 587, 993, 995], min_length=1)
    policy: Literal["intermediate"] = "intermediate"


class WireProxied(Strict):
    """Requests of a client went through a proxy: client <-> proxy and proxy <-> server
    are separate connections, and no connection went from the client to the server."""

    client: Name
    proxy: Name
    server: Name


class WireTunnel(Strict):
    """A VPN hides what it carries: on these links only the tunnel's encrypted UDP
    crosses, with no inner (private) address in any IP header, no inner IP header
    inside a datagram, and no mail protocol in clear; inside the tunnel the inner
    traffic is seen."""

    vpn: Name = Field(description="the vpns: entry whose tunnel is checked")
    links: list[Name] = Field(
        min_length=1, description="the outside links (topology 'a-b' names) that must show nothing inner"
    )


class Wire(Strict):
    """Assertions proved from the captured packets, checked after the last step."""

    tls: WireTls | None = None
    suites: WireSuites | None = None
    no_plaintext_auth: bool = False
    no_plaintext_mail: bool = Field(
        False, description="no SMTP flow carried a message (DATA) before TLS: nothing crossed in clear"
    )
    ssh: bool = Field(False, description="every SSH flow: version exchange, key exchange, then nothing readable")
    path: list[WirePath] = Field(default_factory=list)
    nat: WireNat | None = None
    dhcp: WireDhcp | None = None
    proxied: list[WireProxied] = Field(default_factory=list)
    tunnel: list[WireTunnel] = Field(default_factory=list)

    def check_names(self) -> list[str]:
        """The name of each check, in the order they run (results and rubrics use them)."""
        names = []
        if self.tls is not None:
            names.append(f"wire: TLS >= {self.tls.min_version} on ports {', '.join(map(str, self.tls.ports))}")
        if self.suites is not None:
            names.append(f"wire: suites on ports {', '.join(map(str, self.suites.ports))}")
        if self.no_plaintext_auth:
            names.append("wire: no credentials in clear")
        if self.no_plaintext_mail:
            names.append("wire: no mail in clear")
        if self.ssh:
            names.append("wire: SSH encrypted after the key exchange")
        names += [f"wire: path {p.from_} -> {p.to}:{p.port} via {', '.join(p.via)}" for p in self.path]
        if self.nat is not None:
            names.append(f"wire: NAT on {self.nat.node}")
        if self.dhcp is not None:
            names.append("wire: DHCP exchanges")
        names += [f"wire: {p.client} -> {p.proxy} -> {p.server}, two connections" for p in self.proxied]
        names += [f"wire: tunnel {t.vpn} hides its traffic on {', '.join(t.links)}" for t in self.tunnel]
        return names
