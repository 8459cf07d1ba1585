"""nftables firewall and NAT on a router node, rendered from its ``FirewallPlan``.

The plan (``lab.model.fwplan``) is the topology's zone policy with zones turned into
the firewall's interfaces and ports already parsed; this module only renders it.
What the generated ruleset (one table, ``inet labfw``) does:

- forward: policy drop.  ``ct state established,related`` accepted first (replies, and
  ICMP errors/FTP-like related flows), ``ct state invalid`` dropped.  Then one rule per
  port forward (``ct status dnat`` plus the translated address and port, from the
  forward's zone only), one rule per (allow entry, protocol) (``iifname @zone_X
  oifname @zone_Y``), then, with ``icmp`` (default true), ICMP echo-request for every
  (from, to) pair that has an allow rule -- and only in that direction, like the
  traffic itself (no extra rule where an ``any`` or ``icmp`` allow already passes it).
  IPv4 echo only: the lab's addressing is IPv4.  A last ``counter drop`` makes denied
  packets visible in the counters.
- input (traffic to the firewall itself): policy drop.  Accepts established/related,
  loopback, all ICMP and ICMPv6 (the firewall always answers ping from every zone, and
  IPv6 neighbour discovery needs ICMPv6), the routing protocol of the topology (OSPF:
  IP protocol 89; RIP: udp/520), and ``inbound`` rules for services on the firewall
  itself.  Port forwards need nothing here: DNAT happens in prerouting, so forwarded
  packets go through the forward chain, not input.
- output: policy accept (the firewall's own traffic, e.g. OSPF hellos, is not limited).
- nat: prerouting DNAT for each forward, matching packets that arrive on an interface
  of the forward's zone addressed to one of the firewall's own addresses
  (``fib daddr type local``); postrouting ``masquerade`` for each masquerade entry.  The
  NAT postrouting hook has no input interface, so the ingress zone travels as a packet
  mark set on the first packet of each connection (chain ``zone_mark``, zone N -> mark
  N, in zone order).  Hairpin NAT (a lan host using the firewall's wan address) is not
  generated.

Every rule carries a counter and a comment; ``Firewall.counters()`` reads them back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.model.fwplan import FirewallPlan
from lab.model.nodeplan import NodePlan
from lab.model.plan import Plan
from lab.model.policy import PortSpec
from lab.services.base import TEMPLATES, Deployment, Service, command_version, render_template

FAMILY = "inet"
TABLE = "labfw"
_ROUTING = {
    "ospf": ("meta l4proto 89", "OSPF (IP protocol 89)"),
    "bgp": ("tcp dport 179", "BGP tcp/179"),
    "rip": ("udp dport 520", "RIP udp/520"),
}


@dataclass
class _Rule:
    expr: str
    verdict: str
    comment: str
    note: str = ""


@dataclass
class _Chain:
    name: str
    hook: str
    priority: str
    policy: str = "accept"
    rules: list[_Rule] = field(default_factory=list)


# -- pure: plan -> ruleset text -------------------------------------------------------


def render_ruleset(plan: FirewallPlan) -> str:
    """The nftables ruleset (text for ``nft -f``) of a firewall plan.  No I/O."""
    zset = {z.name: f"zone_{z.name}" for z in plan.zones}
    nat_in = [
        _Rule(
            f"iifname @{zset[f.zone]} fib daddr type local {f.port.proto} dport {f.port.lo}",
            f"dnat ip to {f.to_ip}:{f.to_port}",
            f"forward {f.zone} {f.port} -> {f.to_ip}:{f.to_port}",
        )
        for f in plan.forwards
    ]
    masq = [
        _Rule(f"meta mark {plan.zone(src).mark:#x} oifname @{zset[dst]}", "masquerade", f"masquerade {src}->{dst}")
        for src, dst in plan.masquerade
    ]
    nat_chains = ([_Chain("prerouting", "prerouting", "dstnat", rules=nat_in)] if nat_in else []) + (
        [_Chain("postrouting", "postrouting", "srcnat", rules=masq)] if masq else []
    )
    marked = list(dict.fromkeys(src for src, _ in plan.masquerade))
    zone_marks = ", ".join(f'"{ifc}" : {plan.zone(z).mark:#x}' for z in marked for ifc in plan.zone(z).ifaces)
    return render_template(
        TEMPLATES,
        "nftables.conf.j2",
        header=f"table {FAMILY} {TABLE}: zone firewall and NAT",
        family=FAMILY,
        table=TABLE,
        zones=[
            {
                "name": z.name,
                "set": zset[z.name],
                "ifaces": list(z.ifaces),
                "elements": ", ".join(f'"{i}"' for i in z.ifaces),
            }
            for z in plan.zones
        ],
        zone_marks=zone_marks,
        filter_chains=[_input(plan, zset), _forward(plan, zset), _Chain("output", "output", "filter")],
        nat_chains=nat_chains,
    )


def _ports(proto: str, ports: list[PortSpec]) -> str:
    items = [str(p.lo) if p.lo == p.hi else f"{p.lo}-{p.hi}" for p in ports]
    return f"{proto} dport " + (items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }")


def _forward(plan: FirewallPlan, zset: dict[str, str]) -> _Chain:
    fwd = _Chain(
        "forward",
        "forward",
        "filter",
        "drop",
        [
            _Rule("ct state established,related", "accept", "established,related"),
            _Rule("ct state invalid", "drop", "invalid"),
        ],
    )
    for i, f in enumerate(plan.forwards):
        dest = f"{f.to_ip}:{f.to_port}"
        fwd.rules.append(
            _Rule(
                f"iifname @{zset[f.zone]} ip daddr {f.to_ip} {f.port.proto} dport {f.to_port} ct status dnat",
                "accept",
                f"forward {f.zone} {f.port} -> {dest}",
                note="port forward (DNAT in prerouting)" if i == 0 else "",
            )
        )
    pairs: list[tuple[str, str]] = []
    open_pairs: set[tuple[str, str]] = set()  # an any/icmp rule already passes ping
    first = True
    for rule in plan.allow:
        base = f"iifname @{zset[rule.src]} oifname @{zset[rule.dst]}"
        by_proto: dict[str, list[PortSpec]] = {}
        for p in rule.ports:
            by_proto.setdefault(p.proto, []).append(p)
        for proto, ports in by_proto.items():
            if proto in ("tcp", "udp"):
                expr, what = (
                    f"{base} {_ports(proto, ports)}",
                    f"{proto}/{','.join(str(p).split('/')[1] for p in ports)}",
                )
            elif proto == "icmp":
                expr, what = f"{base} meta l4proto icmp", "icmp/any"
            else:
                expr, what = base, "any"
            fwd.rules.append(
                _Rule(expr, "accept", f"{rule.src}->{rule.dst} {what}", note="zone policy" if first else "")
            )
            first = False
            if proto in ("any", "icmp"):
                open_pairs.add((rule.src, rule.dst))
        if (rule.src, rule.dst) not in pairs:
            pairs.append((rule.src, rule.dst))
    if plan.icmp:
        for j, (src, dst) in enumerate(p for p in pairs if p not in open_pairs):
            fwd.rules.append(
                _Rule(
                    f"iifname @{zset[src]} oifname @{zset[dst]} icmp type echo-request",
                    "accept",
                    f"{src}->{dst} ping",
                    note="ping along every allowed direction" if j == 0 else "",
                )
            )
    if plan.default == "accept":
        # a teaching knob: what a forgotten default policy lets through
        fwd.policy = "accept"
        fwd.rules.append(_Rule("", "accept", "default ACCEPT", note="everything else is let through (default accept)"))
    else:
        fwd.rules.append(_Rule("", "drop", "default drop", note="everything else (the chain policy is drop too)"))
    return fwd


def _input(plan: FirewallPlan, zset: dict[str, str]) -> _Chain:
    inp = _Chain(
        "input",
        "input",
        "filter",
        "drop",
        [
            _Rule("ct state established,related", "accept", "established,related"),
            _Rule("ct state invalid", "drop", "invalid"),
            _Rule('iifname "lo"', "accept", "loopback"),
            _Rule("meta l4proto icmp", "accept", "icmp to the firewall"),
            _Rule("meta l4proto ipv6-icmp", "accept", "icmpv6 (neighbour discovery)"),
        ],
    )
    for proto in plan.routing:
        expr, what = _ROUTING[proto]
        inp.rules.append(_Rule(expr, "accept", f"routing {what}"))
    for r in plan.inbound:
        expr = f"iifname @{zset[r.zone]}" + (
            f" {_ports(r.port.proto, [r.port])}"
            if r.port.proto in ("tcp", "udp")
            else f" meta l4proto {r.port.proto}"
            if r.port.proto != "any"
            else ""
        )
        inp.rules.append(_Rule(expr, "accept", f"{r.zone}->firewall {r.port}"))
    inp.rules.append(_Rule("", "drop", "default drop"))
    return inp


# -- the service ----------------------------------------------------------------------


@dataclass
class Firewall(Service):
    """The nftables ruleset of one firewall node (no daemon: rules live in the kernel)."""

    policy: FirewallPlan | None = None

    daemon = "nftables"
    commands = ("nft",)
    stage = 10  # the network's own behaviour comes first

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        return node.name in plan.firewalls

    @classmethod
    def from_plan(cls, node: Any, dep: Deployment) -> "Firewall":
        return cls(node, dep, policy=dep.plan.firewalls[node.name])

    @property
    def conf(self) -> Path:
        return self.node.dir / "nftables.conf"

    def render(self) -> None:
        assert self.policy is not None, "a Firewall is made from its plan"
        self.write(self.conf, render_ruleset(self.policy))

    def check(self) -> None:
        # inside the node: nft -c asks that namespace's kernel (without committing)
        r = self.node.run(["nft", "-c", "-f", str(self.conf)])
        if r.returncode != 0:
            raise self.fail(
                f"nft -c rejected {self.conf.name} (exit {r.returncode})",
                extra=(r.stdout + r.stderr).strip()[-3000:],
                hint="the message names file:line:column of the bad rule; fix the policy or template",
            )

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.run_checked(["nft", "-f", str(self.conf)], "loading the ruleset (nft -f)")

    def wait_ready(self, timeout: float) -> None:
        def loaded() -> bool:
            r = self.node.run(["nft", "list", "tables"], timeout=10)
            return f"table {FAMILY} {TABLE}" in r.stdout

        self.poll(loaded, timeout, f"show table {FAMILY} {TABLE} in 'nft list tables'")

    def stop(self) -> list[int]:
        r = self.node.run(["nft", "delete", "table", FAMILY, TABLE], timeout=10)
        if r.returncode != 0 and "No such file" not in r.stderr:
            raise self.fail("nft delete table failed", extra=r.stderr.strip())
        return []

    # -- what reports read ---------------------------------------------------------
    def ruleset(self) -> str:
        return self.node.run(["nft", "list", "ruleset"], timeout=10).stdout

    def counters(self) -> list[dict[str, Any]]:
        """Every rule of the table with a counter: chain, comment, packets, bytes, rule text handle."""
        r = self.node.run(["nft", "-j", "list", "table", FAMILY, TABLE], timeout=10)
        if r.returncode != 0:
            return []
        out = []
        for item in json.loads(r.stdout).get("nftables", []):
            rule = item.get("rule")
            if not rule:
                continue
            for e in rule.get("expr", []):
                if isinstance(e, dict) and "counter" in e:
                    out.append(
                        {
                            "chain": rule.get("chain"),
                            "comment": rule.get("comment", ""),
                            "packets": e["counter"].get("packets", 0),
                            "bytes": e["counter"].get("bytes", 0),
                            "handle": rule.get("handle"),
                        }
                    )
                    break
        return out

    def version(self) -> str:
        return command_version(["nft", "--version"])
