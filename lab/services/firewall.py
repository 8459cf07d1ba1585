"""nftables firewall and NAT on a router node, generated from a zone policy.

The policy is plain data (the lab derives it from the topology)::

    {"zones": {"lan": ["eth0"], "dmz": ["eth1"], "wan": ["eth2"]},
     "allow": [{"from": "lan", "to": "dmz", "proto": "tcp", "ports": [25, 587]}, ...],
     "masquerade": [{"from": "lan", "to": "wan"}],
     "forwards": [{"zone": "wan", "proto": "tcp", "port": 25, "to": "10.0.1.10", "to_port": 25}],
     "icmp": True,
     "loss": [{"iface": "eth2", "percent": 5}]}

What the generated ruleset (one table, ``inet labfw``) does:

- forward: policy drop.  ``ct state established,related`` accepted first (replies, and
  ICMP errors/FTP-like related flows), ``ct state invalid`` dropped.  Then one rule per
  port forward (``ct status dnat`` plus the translated address and port, from the
  forward's zone only), one per ``allow`` entry (``iifname @zone_X oifname @zone_Y``),
  then, with ``icmp`` (default true), ICMP echo-request for every (from, to) pair that
  has an allow rule -- and only in that direction, like the traffic itself (no extra
  rule where an ``any`` or ``icmp`` allow already passes it).  IPv4 echo only: the
  lab's addressing is IPv4.  A last
  ``counter drop`` makes denied packets visible in the counters.
- input (traffic to the firewall itself): policy drop.  Accepts established/related,
  loopback, all ICMP and ICMPv6 (the firewall always answers ping from every zone, and
  IPv6 neighbour discovery needs ICMPv6), routing protocols (``routing``, default
  ``["ospf"]``: IP protocol 89 from any zone; also ``"bgp"`` tcp/179, ``"rip"`` udp/520),
  and ``input`` entries ``{"zone": "lan", "proto": "tcp", "ports": [22]}`` for services
  on the firewall itself.  Port forwards need nothing here: DNAT happens in prerouting,
  so forwarded packets go through the forward chain, not input.
- output: policy accept (the firewall's own traffic, e.g. OSPF hellos, is not limited).
- nat: prerouting DNAT for each forward, matching packets that arrive on an interface
  of the forward's zone addressed to one of the firewall's own addresses
  (``fib daddr type local``; or ``"addr": "203.0.113.2"`` in the forward to pin one);
  postrouting ``masquerade`` for each masquerade entry.  The NAT postrouting hook has no
  input interface, so the ingress zone travels as a packet mark set on the first packet
  of each connection (chain ``zone_mark``, zone N -> mark N, in zone order).
  Hairpin NAT (a lan host using the firewall's wan address) is not generated.
- loss: ``{"iface": "eth2", "percent": 5}`` drops that share of the packets *leaving*
  the interface (``numgen random``; ``"direction": "in"`` drops arriving packets
  instead, ``"both"`` both).  The fallback for ``tc netem``, which this kernel lacks.

Every rule carries a counter and a comment; ``Firewall.counters()`` reads them back.
"""
from __future__ import annotations

import ipaddress
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.services.base import TEMPLATES, Service, command_version, render_template

FAMILY = "inet"
TABLE = "labfw"

_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
_IFACE = re.compile(r"^[A-Za-z0-9_.:@+-]{1,15}$")     # IFNAMSIZ - 1, no quotes or spaces
_PROTOS = ("tcp", "udp", "icmp", "any")
_ROUTING = {"ospf": ("meta l4proto 89", "OSPF (IP protocol 89)"),
            "bgp": ("tcp dport 179", "BGP tcp/179"),
            "rip": ("udp dport 520", "RIP udp/520")}


class PolicyError(ValueError):
    """The firewall policy is inconsistent (unknown zone, bad port...)."""


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


# -- pure: policy -> ruleset text -----------------------------------------------------

def render_ruleset(policy: dict[str, Any]) -> str:
    """The nftables ruleset (text for ``nft -f``) of a zone policy.  No I/O.

    Raises PolicyError (a ValueError) naming the offending entry.
    """
    zones = _zones(policy)
    zset = {name: f"zone_{name}" for name in zones}
    mark = {name: i for i, name in enumerate(zones, start=1)}

    def zone_of(entry: dict[str, Any], key: str, where: str) -> str:
        z = entry.get(key)
        if z not in zones:
            raise PolicyError(f"{where}: '{key}' is {z!r}, not one of the zones {sorted(zones)}")
        return z

    # forward ---------------------------------------------------------------------
    fwd = _Chain("forward", "forward", "filter", "drop", [
        _Rule("ct state established,related", "accept", "established,related"),
        _Rule("ct state invalid", "drop", "invalid")])
    forwards = []
    for i, f in enumerate(policy.get("forwards") or []):
        where = f"forwards[{i}]"
        zone = zone_of(f, "zone", where)
        proto = f.get("proto", "tcp")
        if proto not in ("tcp", "udp"):
            raise PolicyError(f"{where}: proto must be tcp or udp, not {proto!r}")
        port = _port(f.get("port"), where + ".port")
        to_port = _port(f.get("to_port", port), where + ".to_port")
        to = _addr(f.get("to"), where + ".to")
        fam = "ip" if to.version == 4 else "ip6"
        dest = f"{to}:{to_port}" if to.version == 4 else f"[{to}]:{to_port}"
        if f.get("addr"):
            a = _addr(f["addr"], where + ".addr")
            if a.version != to.version:
                raise PolicyError(f"{where}: addr {a} and to {to} are not the same IP version")
            match_local = f"{fam} daddr {a}"
        else:
            match_local = "fib daddr type local"
        forwards.append(_Rule(f"iifname @{zset[zone]} {match_local} {proto} dport {port}",
                              f"dnat {fam} to {dest}", f"forward {zone} {proto}/{port} -> {dest}"))
        fwd.rules.append(_Rule(f"iifname @{zset[zone]} {fam} daddr {to} {proto} dport {to_port} ct status dnat",
                               "accept", f"forward {zone} {proto}/{port} -> {dest}",
                               note="port forward (DNAT in prerouting)" if i == 0 else ""))
    pairs: list[tuple[str, str]] = []
    open_pairs: set[tuple[str, str]] = set()   # an any/icmp rule already passes ping
    for i, a in enumerate(policy.get("allow") or []):
        where = f"allow[{i}]"
        src, dst = zone_of(a, "from", where), zone_of(a, "to", where)
        proto = a.get("proto", "any")
        if proto not in _PROTOS:
            raise PolicyError(f"{where}: proto must be one of {list(_PROTOS)}, not {proto!r}")
        ports = [_portspec(p, f"{where}.ports[{j}]") for j, p in enumerate(a.get("ports") or [])]
        if ports and proto not in ("tcp", "udp"):
            raise PolicyError(f"{where}: ports need proto tcp or udp (proto is {proto!r})")
        expr = f"iifname @{zset[src]} oifname @{zset[dst]}"
        if proto in ("tcp", "udp") and ports:
            expr += f" {proto} dport " + (ports[0] if len(ports) == 1 else "{ " + ", ".join(ports) + " }")
            what = f"{proto}/{','.join(ports)}"
        elif proto in ("tcp", "udp", "icmp"):
            expr += f" meta l4proto {proto}"
            what = f"{proto}/any"
        else:
            what = "any"
        fwd.rules.append(_Rule(expr, "accept", f"{src}->{dst} {what}",
                               note="zone policy" if i == 0 else ""))
        if (src, dst) not in pairs:
            pairs.append((src, dst))
        if proto in ("any", "icmp"):
            open_pairs.add((src, dst))
    if policy.get("icmp", True):
        for j, (src, dst) in enumerate(p for p in pairs if p not in open_pairs):
            fwd.rules.append(_Rule(f"iifname @{zset[src]} oifname @{zset[dst]} icmp type echo-request",
                                   "accept", f"{src}->{dst} ping",
                                   note="ping along every allowed direction" if j == 0 else ""))
    if policy.get("default", "drop") == "accept":
        # a teaching knob: what a forgotten default policy lets through
        fwd.policy = "accept"
        fwd.rules.append(_Rule("", "accept", "default ACCEPT", note="everything else is let through (default accept)"))
    else:
        fwd.rules.append(_Rule("", "drop", "default drop", note="everything else (the chain policy is drop too)"))

    # input -----------------------------------------------------------------------
    inp = _Chain("input", "input", "filter", "drop", [
        _Rule("ct state established,related", "accept", "established,related"),
        _Rule("ct state invalid", "drop", "invalid"),
        _Rule('iifname "lo"', "accept", "loopback"),
        _Rule("meta l4proto icmp", "accept", "icmp to the firewall"),
        _Rule("meta l4proto ipv6-icmp", "accept", "icmpv6 (neighbour discovery)")])
    for proto in policy.get("routing", ["ospf"]) or []:
        if proto not in _ROUTING:
            raise PolicyError(f"routing: {proto!r} is not one of {sorted(_ROUTING)}")
        expr, what = _ROUTING[proto]
        inp.rules.append(_Rule(expr, "accept", f"routing {what}"))
    for i, s in enumerate(policy.get("input") or []):
        where = f"input[{i}]"
        zone = zone_of(s, "zone", where)
        proto = s.get("proto", "tcp")
        if proto not in _PROTOS:
            raise PolicyError(f"{where}: proto must be one of {list(_PROTOS)}, not {proto!r}")
        ports = [_portspec(p, f"{where}.ports[{j}]") for j, p in enumerate(s.get("ports") or [])]
        if ports and proto not in ("tcp", "udp"):
            raise PolicyError(f"{where}: ports need proto tcp or udp (proto is {proto!r})")
        expr = f"iifname @{zset[zone]}"
        if ports:
            expr += f" {proto} dport " + (ports[0] if len(ports) == 1 else "{ " + ", ".join(ports) + " }")
        elif proto != "any":
            expr += f" meta l4proto {proto}"
        inp.rules.append(_Rule(expr, "accept", f"{zone}->firewall {proto}/{','.join(ports) or 'any'}"))
    inp.rules.append(_Rule("", "drop", "default drop"))

    out = _Chain("output", "output", "filter", "accept")

    # loss ------------------------------------------------------------------------
    loss_out = _Chain("loss_out", "postrouting", "filter", "accept")
    loss_in = _Chain("loss_in", "prerouting", "raw", "accept")
    for i, l in enumerate(policy.get("loss") or []):
        where = f"loss[{i}]"
        iface = l.get("iface")
        if not isinstance(iface, str) or not _IFACE.match(iface):
            raise PolicyError(f"{where}: iface {iface!r} is not an interface name")
        pct = l.get("percent")
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 < pct <= 100:
            raise PolicyError(f"{where}: percent must be a number in (0, 100], not {pct!r}")
        if pct == 100:      # "mod 100 < 100" is out of nft's range: drop all
            rnd = ""
        elif float(pct).is_integer():
            rnd = f"numgen random mod 100 < {int(pct)}"
        else:   # 0.01 % resolution
            rnd = f"numgen random mod 10000 < {round(pct * 100)}"
        direction = l.get("direction", "out")
        if direction not in ("in", "out", "both"):
            raise PolicyError(f"{where}: direction must be in, out or both, not {direction!r}")
        if direction in ("out", "both"):
            loss_out.rules.append(_Rule(f'oifname "{iface}" {rnd}'.rstrip(), "drop", f"loss {iface} out {pct}%"))
        if direction in ("in", "both"):
            loss_in.rules.append(_Rule(f'iifname "{iface}" {rnd}'.rstrip(), "drop", f"loss {iface} in {pct}%"))
    filter_chains = [inp, fwd, out] + [c for c in (loss_in, loss_out) if c.rules]

    # nat -------------------------------------------------------------------------
    nat_chains = []
    if forwards:
        nat_chains.append(_Chain("prerouting", "prerouting", "dstnat", rules=forwards))
    masq = []
    marked: list[str] = []
    for i, m in enumerate(policy.get("masquerade") or []):
        where = f"masquerade[{i}]"
        src, dst = zone_of(m, "from", where), zone_of(m, "to", where)
        masq.append(_Rule(f"meta mark {mark[src]:#x} oifname @{zset[dst]}", "masquerade",
                          f"masquerade {src}->{dst}"))
        if src not in marked:
            marked.append(src)
    if masq:
        nat_chains.append(_Chain("postrouting", "postrouting", "srcnat", rules=masq))
    zone_marks = ", ".join(f'"{ifc}" : {mark[z]:#x}' for z in marked for ifc in zones[z])

    return render_template(
        TEMPLATES, "nftables.conf.j2", header=f"table {FAMILY} {TABLE}: zone firewall and NAT",
        family=FAMILY, table=TABLE,
        zones=[{"name": z, "set": zset[z], "ifaces": ifs, "elements": ", ".join(f'"{i}"' for i in ifs)}
               for z, ifs in zones.items()],
        zone_marks=zone_marks, filter_chains=filter_chains, nat_chains=nat_chains)


def _zones(policy: dict[str, Any]) -> dict[str, list[str]]:
    raw = policy.get("zones")
    if not isinstance(raw, dict) or not raw:
        raise PolicyError("zones: need a mapping of zone name -> list of interfaces")
    seen: dict[str, str] = {}
    zones: dict[str, list[str]] = {}
    for name, ifaces in raw.items():
        if not isinstance(name, str) or not _ZONE.match(name):
            raise PolicyError(f"zones: {name!r} is not a zone name (letters, digits, _; a letter first)")
        if isinstance(ifaces, str):
            ifaces = [ifaces]
        if not ifaces:
            raise PolicyError(f"zones.{name}: no interfaces")
        for ifc in ifaces:
            if not isinstance(ifc, str) or not _IFACE.match(ifc):
                raise PolicyError(f"zones.{name}: {ifc!r} is not an interface name")
            if ifc in seen:
                raise PolicyError(f"zones.{name}: {ifc} is already in zone {seen[ifc]}")
            seen[ifc] = name
        zones[name] = list(ifaces)
    return zones


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise PolicyError(f"{where}: {value!r} is not a port (1-65535)")
    return value


def _portspec(value: Any, where: str) -> str:
    """A port (25) or a range ("1024-2047")."""
    if isinstance(value, str) and re.fullmatch(r"\d+-\d+", value):
        lo, hi = (int(x) for x in value.split("-"))
        _port(lo, where), _port(hi, where)
        if lo >= hi:
            raise PolicyError(f"{where}: empty port range {value!r}")
        return f"{lo}-{hi}"
    return str(_port(value, where))


def _addr(value: Any, where: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise PolicyError(f"{where}: {value!r} is not an IP address") from None


# -- the service ----------------------------------------------------------------------

@dataclass
class Firewall(Service):
    """The nftables ruleset of one router/firewall node (no daemon: rules live in the kernel).

    ``policy`` (the dict described in this module's docstring) is set before render().
    """

    policy: dict[str, Any] = field(default_factory=dict)

    daemon = "nftables"

    @property
    def conf(self) -> Path:
        return self.node.dir / "nftables.conf"

    def render(self) -> None:
        try:
            text = render_ruleset(self.policy)
        except PolicyError as exc:
            raise self.fail(f"bad firewall policy: {exc}") from None
        self.write(self.conf, text)

    def check(self) -> None:
        # inside the node: nft -c asks that namespace's kernel (without committing)
        r = self.node.run(["nft", "-c", "-f", str(self.conf)])
        if r.returncode != 0:
            raise self.fail(f"nft -c rejected {self.conf.name} (exit {r.returncode})",
                            extra=(r.stdout + r.stderr).strip()[-3000:],
                            hint="the message names file:line:column of the bad rule; fix the policy or template")

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.run_checked(["nft", "-f", str(self.conf)], "loading the ruleset (nft -f)")

    def wait_ready(self, timeout: float) -> None:
        def loaded() -> bool:
            r = self.node.run(["nft", "list", "tables"], timeout=10)
            return f"table {FAMILY} {TABLE}" in r.stdout
        self.poll(loaded, timeout, f"show table {FAMILY} {TABLE} in 'nft list tables'")

    def stop(self) -> None:
        r = self.node.run(["nft", "delete", "table", FAMILY, TABLE], timeout=10)
        if r.returncode != 0 and "No such file" not in r.stderr:
            raise self.fail("nft delete table failed", extra=r.stderr.strip())

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
                    out.append({"chain": rule.get("chain"), "comment": rule.get("comment", ""),
                                "packets": e["counter"].get("packets", 0),
                                "bytes": e["counter"].get("bytes", 0), "handle": rule.get("handle")})
                    break
        return out

    def version(self) -> str:
        return command_version(["nft", "--version"])
