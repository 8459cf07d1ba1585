"""Routing and firewall policy of a topology: the models, and their checks against
the rest of the topology (routers, their interfaces, zones)."""
from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from lab.errors import Problem
from lab.model.schema import Strict, hinted, suggest
from lab.model.yamlload import Located

if TYPE_CHECKING:
    from lab.model.topology import Iface, Subnet, TopologyFile

#: Roles that forward packets between their interfaces.
ROUTING_ROLES = ("router", "firewall")


class StaticRoute(Strict):
    to: str = Field(description="destination network in CIDR form, or 'default'")
    via: str = Field(description="next-hop address on a subnet the router joins")


class Routing(Strict):
    mode: Literal["static", "ospf", "rip"] = "static"
    routes: dict[str, list[StaticRoute]] = Field(
        default_factory=dict, description="static mode: routes by router; replaces the derived ones for that router")
    derive: bool = Field(True, description="static mode: derive shortest-path routes for routers not listed")
    hello: int = Field(1, ge=1, le=60, description="OSPF hello interval (s)")
    dead: int = Field(4, ge=2, le=240, description="OSPF dead interval (s)")


PORT_RE = re.compile(r"^(tcp|udp)/(\d{1,5})(-(\d{1,5}))?$|^(icmp|any)$")


class Allow(Strict):
    from_: str = Field(alias="from")
    to: str
    ports: list[str] = Field(default_factory=lambda: ["any"],
                             description="tcp/25, udp/53, tcp/8000-8080, icmp, or any")

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[str]) -> list[str]:
        for item in v:
            m = PORT_RE.match(str(item))
            if not m or (m.group(2) and not 1 <= int(m.group(2)) <= 65535):
                raise ValueError(hinted(f"'{item}' is not a port", "write tcp/25, udp/53, icmp or any"))
        return [str(x) for x in v]


class Masquerade(Strict):
    from_: str = Field(alias="from")
    to: str


class PortForward(Strict):
    zone: str = Field(description="the zone where connections arrive (on the firewall's own address there)")
    port: str = Field(description="tcp/25 or udp/53")
    to: str = Field(description="the node that receives them")
    to_port: int | None = Field(None, ge=1, le=65535)

    @field_validator("port")
    @classmethod
    def _port(cls, v: str) -> str:
        m = PORT_RE.match(str(v))
        if not m or not m.group(1) or m.group(3):
            raise ValueError(hinted(f"'{v}' is not a single port", "write tcp/25 or udp/53"))
        return str(v)


class FirewallPolicy(Strict):
    zones: dict[str, list[str]] = Field(description="zone name: the subnets behind it")
    allow: list[Allow] = Field(default_factory=list)
    masquerade: list[Masquerade] = Field(default_factory=list)
    forward: list[PortForward] = Field(default_factory=list)
    icmp: bool = Field(True, description="let ping through wherever some traffic is allowed")
    default: Literal["drop", "accept"] = Field(
        "drop", description="what happens to traffic no rule allows (accept: a weakened firewall, for labs)")


def _check_routing(t: TopologyFile, ifaces: dict[str, list[Iface]], subnets: dict[str, Subnet],
                   src: Located) -> list[Problem]:
    out: list[Problem] = []
    r = t.routing
    if isinstance(r, str):
        return out
    for router, routes in r.routes.items():
        where = ("routing", "routes", router)
        node = t.nodes.get(router)
        if node is None or node.role not in ROUTING_ROLES:
            out.append(src.problem(where, f"'{router}' is not a router" if node else f"unknown node '{router}'",
                                   suggest(router, [n for n, v in t.nodes.items() if v.role in ROUTING_ROLES])))
            continue
        if r.mode != "static":
            out.append(src.problem(where, f"static routes are listed but routing mode is '{r.mode}'",
                                   "set mode: static, or remove routes"))
        mine = [subnets[i.subnet].network for i in ifaces[router]]
        for j, route in enumerate(routes):
            if route.to != "default":
                try:
                    ipaddress.IPv4Network(route.to)
                except ValueError:
                    out.append(src.problem(where + (j, "to"), f"'{route.to}' is not a network in CIDR form"))
            try:
                via = ipaddress.IPv4Address(route.via)
            except ValueError:
                out.append(src.problem(where + (j, "via"), f"'{route.via}' is not an IPv4 address"))
                continue
            if not any(via in net for net in mine):
                out.append(src.problem(where + (j, "via"), f"{via} is not on a subnet '{router}' joins",
                                       "a next hop must be a neighbour: " + ", ".join(map(str, mine))))
    return out


def _check_firewalls(t: TopologyFile, ifaces: dict[str, list[Iface]], subnets: dict[str, Subnet],
                     src: Located) -> list[Problem]:
    out: list[Problem] = []
    for fw, pol in t.firewalls.items():
        where = ("firewalls", fw)
        node = t.nodes.get(fw)
        if node is None or node.role != "firewall":
            out.append(src.problem(where, f"'{fw}' is not a firewall node" if node else f"unknown node '{fw}'",
                                   suggest(fw, [n for n, v in t.nodes.items() if v.role == "firewall"])))
            continue
        joined = {i.subnet for i in ifaces[fw]}
        zoned: dict[str, str] = {}
        for zone, subs in pol.zones.items():
            for j, sub in enumerate(subs):
                if sub not in joined:
                    out.append(src.problem(where + ("zones", zone, j), f"'{fw}' has no interface on subnet '{sub}'",
                                           suggest(sub, sorted(joined)) or "its subnets: " + ", ".join(sorted(joined))))
                elif sub in zoned:
                    out.append(src.problem(where + ("zones", zone, j), f"subnet '{sub}' is already in zone '{zoned[sub]}'"))
                zoned[sub] = zone
        for sub in sorted(joined - set(zoned)):
            out.append(src.problem(where + ("zones",), f"subnet '{sub}' of '{fw}' is in no zone",
                                   "every interface of a firewall needs a zone"))
        zones = list(pol.zones)
        for j, rule in enumerate(pol.allow):
            for key, val in (("from", rule.from_), ("to", rule.to)):
                if val not in pol.zones:
                    out.append(src.problem(where + ("allow", j, key), f"unknown zone '{val}'", suggest(val, zones)))
        for j, m in enumerate(pol.masquerade):
            for key, val in (("from", m.from_), ("to", m.to)):
                if val not in pol.zones:
                    out.append(src.problem(where + ("masquerade", j, key), f"unknown zone '{val}'", suggest(val, zones)))
        for j, f in enumerate(pol.forward):
            if f.zone not in pol.zones:
                out.append(src.problem(where + ("forward", j, "zone"), f"unknown zone '{f.zone}'", suggest(f.zone, zones)))
            if f.to not in t.nodes:
                out.append(src.problem(where + ("forward", j, "to"), f"unknown node '{f.to}'", suggest(f.to, list(t.nodes))))
            elif t.nodes[f.to].role == "switch" or not any(i.address for i in ifaces.get(f.to, [])):
                out.append(src.problem(where + ("forward", j, "to"), f"'{f.to}' has no static address to forward to"))
    for name, node in t.nodes.items():
        if node.role == "firewall" and name not in t.firewalls:
            out.append(src.problem(("nodes", name), f"firewall '{name}' has no policy",
                                   f"add firewalls.{name} with zones and allow rules"))
    return out
