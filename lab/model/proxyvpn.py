"""What a topology says about its proxies and VPNs, as validated data.

- ``proxies``: a forward proxy (Squid) on a node of role ``proxy``: which subnets may
  use it, which sites it refuses (an ACL on the destination domain), which ports it
  lets a client reach (80 for plain HTTP, 443 through CONNECT).
- ``vpns``: OpenVPN tunnels over TUN, site to site between two gateways, or remote
  access for road warriors, with the networks each end reaches through the tunnel.

Every value that reaches a config file or a command line is checked here as data:
names and domains match whole patterns, ports are numbers, ciphers come from a list.
Cross-checks against nodes and subnets are ``lab.model.checks.netsvc``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from lab.model.policy import PortNumber
from lab.model.schema import Strict, hinted

_DOMAIN = re.compile(r"\.?(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _site(v: str) -> str:
    if not _DOMAIN.fullmatch(v):
        raise ValueError(
            hinted(
                f"'{v}' is not a host or domain name",
                "lower-case letters, digits, '-' and dots, e.g. games.partenaire.dz (a leading dot: every host under it)",
            )
        )
    return v


def _label(v: str) -> str:
    if not _LABEL.fullmatch(v):
        raise ValueError(hinted(f"'{v}' is not a DNS label", "lower-case letters, digits and '-', e.g. www"))
    return v


#: a destination an ACL names: a host name, or ``.domain`` for every host under it
Site = Annotated[str, AfterValidator(_site)]
#: one label of a host name (an alias of a node in its own domain)
Label = Annotated[str, AfterValidator(_label)]


class ProxyPolicy(Strict):
    """A forward proxy (Squid) on a node of role ``proxy``."""

    port: PortNumber = Field(3128, description="where clients reach the proxy")
    clients: list[str] = Field(min_length=1, description="the subnets whose hosts may use it")
    deny: list[Site] = Field(
        default_factory=list, description="sites refused by ACL: 'games.partenaire.dz', or '.partenaire.dz' for all"
    )
    ports: list[PortNumber] = Field(
        default_factory=lambda: [80, 443], min_length=1, description="destination ports; 443 (CONNECT) for HTTPS"
    )


Cipher = Literal["AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"]
CIPHERS = ("AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305")


def _cidr30(v: str) -> str:
    try:
        net = ipaddress.IPv4Network(str(v), strict=True)
    except ValueError:
        raise ValueError(hinted(f"'{v}' is not an IPv4 network in CIDR form", "write it as 10.99.0.0/24")) from None
    if net.prefixlen > 29 or net.prefixlen < 16:
        raise ValueError(hinted(f"'{v}': a tunnel network is a /16 to a /29", "e.g. 10.8.0.0/24"))
    return str(net)


class Vpn(Strict):
    """An OpenVPN tunnel over TUN, with TLS (certificates of the run's lab CA)."""

    type: Literal["site-to-site", "remote-access"]
    server: str = Field(description="the node that listens (a router or firewall: a gateway)")
    clients: list[str] = Field(
        min_length=1, max_length=50, description="site-to-site: the other gateway; remote-access: the road warriors"
    )
    subnet: str = Field(description="the addresses inside the tunnel, e.g. 10.8.0.0/24")
    networks: dict[str, list[str]] = Field(
        default_factory=dict,
        description="node: the subnets behind it that the other ends reach through the tunnel",
    )
    port: PortNumber = Field(1194, description="UDP port of the server")
    cipher: Cipher = "AES-256-GCM"

    _subnet = field_validator("subnet")(lambda cls, v: _cidr30(v))

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, v: object) -> object:
        if isinstance(v, str) and v not in ("site-to-site", "remote-access"):
            shown = f"'{v}'" if len(v) <= 40 and v.isprintable() else repr(v[:40])
            raise ValueError(
                hinted(
                    f"{shown} is not a kind of tunnel the lab builds",
                    "site-to-site (two gateways) or remote-access (road warriors): both are OpenVPN over TUN",
                )
            )
        return v

    @field_validator("cipher", mode="before")
    @classmethod
    def _cipher(cls, v: object) -> object:
        # the same list as the Literal (the published schema's enum), said with a hint
        if isinstance(v, str) and v not in CIPHERS:
            shown = f"'{v}'" if len(v) <= 40 and v.isprintable() else repr(v[:40])
            raise ValueError(
                hinted(
                    f"{shown} is not a cipher the lab's OpenVPN negotiates",
                    f"one of {', '.join(CIPHERS)} (authenticated ciphers; BF-CBC and the other CBC ones are refused)",
                )
            )
        return v

    @model_validator(mode="after")
    def _shape(self) -> "Vpn":
        if self.type == "site-to-site" and len(self.clients) != 1:
            raise ValueError(hinted("a site-to-site tunnel joins two gateways", "name exactly one client gateway"))
        if self.server in self.clients:
            raise ValueError(hinted(f"'{self.server}' is both the server and a client", "name two different nodes"))
        net = ipaddress.IPv4Network(self.subnet)
        if net.num_addresses - 2 < len(self.clients) + 1:
            raise ValueError(hinted(f"{self.subnet} is too small for {len(self.clients) + 1} ends", "use a /24"))
        return self
