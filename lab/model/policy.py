"""Routing and firewall policy of a topology, as validated data.

Ports are parsed once, here, into ``PortSpec`` values (``tcp/25``, ``tcp/8000-8080``,
``icmp``, ``any``); the firewall plan, the ruleset renderer and the probe matrix use
those values and never parse text again.  Cross-checks against the rest of the
topology (routers, interfaces, zones) are phases in ``lab.model.checks``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema, model_validator

from lab.model.schema import Strict, hinted

#: Roles that forward packets between their interfaces.
ROUTING_ROLES = ("router", "firewall")

_PORT = re.compile(r"(tcp|udp)/(\d{1,5})(?:-(\d{1,5}))?|(icmp|any)")
PORT_PATTERN = r"^((tcp|udp)/[0-9]{1,5}(-[0-9]{1,5})?|icmp|any)$"


@dataclass(frozen=True, order=True)
class PortSpec:
    """What a firewall rule or a probe names: a protocol and, for tcp/udp, a port range."""

    proto: str  # tcp, udp, icmp, any
    lo: int = 0  # tcp/udp: first port (1-65535); 0 for icmp/any
    hi: int = 0  # tcp/udp: last port (== lo for one port)

    def __str__(self) -> str:
        if self.proto in ("icmp", "any"):
            return self.proto
        return f"{self.proto}/{self.lo}" if self.lo == self.hi else f"{self.proto}/{self.lo}-{self.hi}"

    @property
    def single(self) -> bool:
        return self.proto in ("tcp", "udp") and self.lo == self.hi

    def covers(self, proto: str, port: int | None = None) -> bool:
        """Does this spec let ``proto``/``port`` through?"""
        if self.proto == "any":
            return True
        if self.proto != proto:
            return False
        return proto == "icmp" or (port is not None and self.lo <= port <= self.hi)


def parse_port(text: Any) -> PortSpec:
    """``tcp/25``, ``udp/53``, ``tcp/8000-8080``, ``icmp`` or ``any``; ports 1-65535."""
    if isinstance(text, PortSpec):
        return text
    if not isinstance(text, str):
        raise ValueError(hinted(f"{text!r} is not a port", "write tcp/25, udp/53, tcp/8000-8080, icmp or any"))
    m = _PORT.fullmatch(text)
    if not m:
        raise ValueError(hinted(f"'{text}' is not a port", "write tcp/25, udp/53, tcp/8000-8080, icmp or any"))
    if m.group(4):
        return PortSpec(m.group(4))
    lo = int(m.group(2))
    hi = int(m.group(3)) if m.group(3) else lo
    for n in (lo, hi):
        if not 1 <= n <= 65535:
            raise ValueError(hinted(f"'{text}': {n} is not a port number", "ports go from 1 to 65535"))
    if hi < lo or (m.group(3) and hi == lo):
        raise ValueError(hinted(f"'{text}' is not a range", "write the lower port first: tcp/8000-8080"))
    return PortSpec(m.group(1), lo, hi)


def parse_single_port(text: Any) -> PortSpec:
    spec = parse_port(text)
    if not spec.single:
        raise ValueError(hinted(f"'{text}' is not a single port", "write tcp/25 or udp/53"))
    return spec


_SCHEMA = WithJsonSchema(
    {"type": "string", "pattern": PORT_PATTERN, "description": "tcp/25, udp/53, tcp/8000-8080, icmp or any"}
)
Port = Annotated[PortSpec, BeforeValidator(parse_port), PlainSerializer(str, return_type=str), _SCHEMA]
SinglePort = Annotated[
    PortSpec,
    BeforeValidator(parse_single_port),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(tcp|udp)/[0-9]{1,5}$", "description": "tcp/25 or udp/53"}),
]
PortNumber = Annotated[int, Field(ge=1, le=65535)]


class StaticRoute(Strict):
    to: str = Field(description="destination network in CIDR form, or 'default'")
    via: str = Field(description="next-hop address on a subnet the router joins")


class Routing(Strict):
    mode: Literal["static", "ospf", "rip"] = "static"
    routes: dict[str, list[StaticRoute]] = Field(
        default_factory=dict, description="static mode: routes by router; replaces the derived ones for that router"
    )
    derive: bool = Field(True, description="static mode: derive shortest-path routes for routers not listed")
    hello: int = Field(1, ge=1, le=60, description="OSPF hello interval (s)")
    dead: int = Field(4, ge=2, le=240, description="OSPF dead interval (s), longer than hello")

    @model_validator(mode="after")
    def _timers(self) -> "Routing":
        if self.dead <= self.hello:
            raise ValueError(
                hinted(
                    f"the OSPF dead interval ({self.dead} s) must be longer than hello ({self.hello} s)",
                    f"the usual dead interval is four hellos: dead: {4 * self.hello}",
                )
            )
        return self


class Allow(Strict):
    from_: str = Field(alias="from")
    to: str
    ports: list[Port] = Field(
        default_factory=lambda: [PortSpec("any")], description="tcp/25, udp/53, tcp/8000-8080, icmp, or any"
    )


class Masquerade(Strict):
    from_: str = Field(alias="from")
    to: str


class PortForward(Strict):
    zone: str = Field(description="the zone where connections arrive (on the firewall's own address there)")
    port: SinglePort = Field(description="tcp/25 or udp/53")
    to: str = Field(description="the node that receives them")
    to_port: PortNumber | None = None


class Inbound(Strict):
    """Traffic to the firewall itself (its own services, e.g. ssh), from one zone."""

    from_: str = Field(alias="from")
    ports: list[Port] = Field(min_length=1, description="tcp/22 ...")


class FirewallPolicy(Strict):
    zones: dict[str, list[str]] = Field(description="zone name: the subnets behind it")
    allow: list[Allow] = Field(default_factory=list)
    inbound: list[Inbound] = Field(
        default_factory=list, description="connections to the firewall itself, by zone (e.g. ssh from the admins)"
    )
    masquerade: list[Masquerade] = Field(default_factory=list)
    forward: list[PortForward] = Field(default_factory=list)
    icmp: bool = Field(True, description="let ping through wherever some traffic is allowed")
    default: Literal["drop", "accept"] = Field(
        "drop", description="what happens to traffic no rule allows (accept: a weakened firewall, for labs)"
    )
