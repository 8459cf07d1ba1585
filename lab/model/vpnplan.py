"""The VPN plan: each tunnel's ends with their devices, addresses, endpoints and routes.

Derived from the topology's ``vpns`` once it is checked.  An end is one OpenVPN
process on one node: the server of a site-to-site tunnel talks to one peer
(point to point, ``--ifconfig local remote``); a remote-access server gives each road
warrior a fixed address (``--server`` with a client-config-dir) and pushes the routes
of the networks behind it.  Each end's TUN device (``vpn0``, ``vpn1`` ... per node) is
made with the network, so the run can capture inside the tunnel from the start, and
each end gets an unreachable route for what it reaches through the tunnel: with the
tunnel down nothing for those networks leaves in clear.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab.model.nodeplan import NodePlan
from lab.model.topology import TopologyFile


@dataclass(frozen=True)
class TunnelEnd:
    vpn: str
    kind: str  # site-to-site or remote-access
    node: str
    role: str  # server or client
    dev: str  # vpn0 ...
    address: str  # inside the tunnel
    prefixlen: int
    local: str  # the node's own address the tunnel's UDP uses
    port: int
    remote: str | None  # the server's endpoint (clients), the peer's (site-to-site server)
    peer_address: str | None  # site-to-site: the other end inside the tunnel
    routes: tuple[str, ...]  # networks (CIDR) reached through the tunnel
    push: tuple[str, ...]  # remote-access server: routes it gives its clients
    clients: tuple[tuple[str, str], ...]  # remote-access server: (client node, its address)
    server_name: str  # the server's host name (its certificate's)
    peer_names: tuple[str, ...]  # the names this end accepts on the other side's certificate
    cipher: str


@dataclass(frozen=True)
class VpnPlan:
    name: str
    kind: str
    server: str
    endpoint: str
    port: int
    subnet: str
    ends: tuple[TunnelEnd, ...]
    inner: tuple[str, ...]  # every network the tunnel carries (CIDR), its own subnet included


def _endpoint(node: NodePlan, inside: set[str]) -> str:
    """The address a gateway's tunnel uses: its first one outside the networks it offers."""
    outside = [i.ip for i in node.interfaces if i.ip and i.subnet not in inside]
    return str(outside[0] if outside else node.ip)


def vpn_plans(t: TopologyFile, cidrs: dict[str, str], nodes: dict[str, NodePlan]) -> dict[str, VpnPlan]:
    out: dict[str, VpnPlan] = {}
    devs: dict[str, int] = {}

    def dev(node: str) -> str:
        devs[node] = devs.get(node, 0) + 1
        return f"vpn{devs[node] - 1}"

    for name, v in t.vpns.items():
        net = ipaddress.IPv4Network(v.subnet)
        behind = {n: tuple(cidrs[s] for s in subs) for n, subs in v.networks.items()}
        endpoint = _endpoint(nodes[v.server], set(v.networks.get(v.server, [])))
        mine = behind.get(v.server, ())
        theirs = tuple(c for n in v.clients for c in behind.get(n, ()))
        make = _site_to_site if v.type == "site-to-site" else _remote_access
        ends = make(name, v, net, nodes, endpoint, mine, theirs, dev)
        inner = (str(net), *mine, *theirs)
        out[name] = VpnPlan(name, v.type, v.server, endpoint, v.port, str(net), tuple(ends), inner)
    return out


def _site_to_site(
    name: str,
    v: Any,
    net: ipaddress.IPv4Network,
    nodes: dict[str, NodePlan],
    endpoint: str,
    mine: tuple[str, ...],
    theirs: tuple[str, ...],
    dev: Callable[[str], str],
) -> list[TunnelEnd]:
    """Two ends, a /32 each side: each routes the other site's networks into the tunnel."""
    hosts = list(net.hosts())
    peer = v.clients[0]
    peer_ep = _endpoint(nodes[peer], set(v.networks.get(peer, [])))
    server_fqdn, peer_fqdn = nodes[v.server].fqdn, nodes[peer].fqdn
    return [
        TunnelEnd(
            name,
            v.type,
            v.server,
            "server",
            dev(v.server),
            str(hosts[0]),
            32,
            endpoint,
            v.port,
            peer_ep,
            str(hosts[1]),
            theirs,
            (),
            (),
            server_fqdn,
            (peer_fqdn,),
            v.cipher,
        ),
        TunnelEnd(
            name,
            v.type,
            peer,
            "client",
            dev(peer),
            str(hosts[1]),
            32,
            peer_ep,
            v.port,
            endpoint,
            str(hosts[0]),
            mine,
            (),
            (),
            server_fqdn,
            (server_fqdn,),
            v.cipher,
        ),
    ]


def _remote_access(
    name: str,
    v: Any,
    net: ipaddress.IPv4Network,
    nodes: dict[str, NodePlan],
    endpoint: str,
    mine: tuple[str, ...],
    theirs: tuple[str, ...],
    dev: Callable[[str], str],
) -> list[TunnelEnd]:
    """The server with a pool for its road warriors, and one end per client."""
    hosts = list(net.hosts())
    clients = tuple((c, str(hosts[k + 1])) for k, c in enumerate(v.clients))
    server_fqdn = nodes[v.server].fqdn
    ends = [
        TunnelEnd(
            name,
            v.type,
            v.server,
            "server",
            dev(v.server),
            str(hosts[0]),
            net.prefixlen,
            endpoint,
            v.port,
            None,
            None,
            theirs,
            mine,
            clients,
            server_fqdn,
            tuple(nodes[c].fqdn for c in v.clients),
            v.cipher,
        )
    ]
    for c, addr in clients:
        ends.append(
            TunnelEnd(
                name,
                v.type,
                c,
                "client",
                dev(c),
                addr,
                net.prefixlen,
                str(nodes[c].ip),
                v.port,
                endpoint,
                None,
                mine,
                (),
                (),
                server_fqdn,
                (server_fqdn,),
                v.cipher,
            )
        )
    return ends
