"""Network actions: ping, trace, links and nodes up and down, services, probes, routes, captures, loss, the firewall matrix."""
from __future__ import annotations

import json
import sys
import time
from typing import Any

from lab.model import scenario as S

from lab.scenario.steps import Context, Outcome, action, failed, passed



def target_ip(ctx: Context, to: str) -> str:
    """A node name, a host name or an address -> the address to use."""
    import ipaddress
    try:
        return str(ipaddress.IPv4Address(to))
    except ValueError:
        pass
    node = ctx.plan.node_by_fqdn(to) or ctx.plan.node_by_fqdn(to.split(".")[0])
    if node is None:
        raise KeyError(to)
    live = ctx.lab.nodes.get(node.name)
    ip = live.ip if live is not None else node.ip
    if ip is None:
        raise RuntimeError(f"'{to}' has no address (yet)")
    return ip


def _ping(ctx: Context, on: str, ip: str, count: int, interval: float, size: int | None = None,
          wait: float = 1.0) -> dict[str, Any]:
    args = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(wait)]
    if size is not None:
        args += ["-s", str(size)]
    r = ctx.lab.node(on).run([*args, ip], timeout=count * max(interval, 0.01) + wait + 30)
    out: dict[str, Any] = {"target": ip, "sent": count, "received": 0, "loss": 100.0, "output": r.stdout.strip()}
    for line in r.stdout.splitlines():
        if "packets transmitted" in line:
            parts = [p.strip() for p in line.split(",")]
            out["sent"] = int(parts[0].split()[0])
            out["received"] = int(parts[1].split()[0])
            loss = next((p for p in parts if "packet loss" in p), "100%")
            out["loss"] = float(loss.split("%")[0])
        if line.startswith("rtt") or line.startswith("round-trip"):
            vals = line.split("=")[1].split()[0].split("/")
            out["rtt_ms"] = {"min": float(vals[0]), "avg": float(vals[1]), "max": float(vals[2])}
    return out


@action("ping")
def ping(ctx: Context, s: S.Ping) -> Outcome:
    ip = target_ip(ctx, s.to)
    r = _ping(ctx, s.on, ip, s.count, s.interval, s.size)
    rtt = r.get("rtt_ms")
    summary = f"{r['received']}/{r['sent']} replies, {r['loss']:g}% loss" + (f", rtt avg {rtt['avg']:.3f} ms" if rtt else "")
    if s.expect == "reachable":
        if r["received"] == 0 or r["loss"] > s.max_loss:
            return failed(f"{s.to} ({ip}): {summary}, allowed {s.max_loss:g}%", **r)
        return passed(summary, **r)
    if r["received"]:
        return failed(f"{s.to} ({ip}) answered: {summary}", **r)
    return passed(f"no reply from {ip}, as expected", **r)


def trace(ctx: Context, on: str, ip: str, max_hops: int) -> list[dict[str, Any]]:
    """TTL probing with ping: one hop per TTL until the target answers."""
    hops = []
    node = ctx.lab.node(on)
    for ttl in range(1, max_hops + 1):
        r = node.run(["ping", "-n", "-c", "1", "-W", "1", "-t", str(ttl), ip], timeout=10)
        text = r.stdout
        hop: dict[str, Any] = {"ttl": ttl, "address": None}
        for line in text.splitlines():
            if line.startswith("From ") and "exceeded" in line:
                hop["address"] = line.split()[1].rstrip(":")
            elif "bytes from" in line:
                hop["address"] = line.split("from")[1].split(":")[0].strip()
                hop["reached"] = True
        owner = ctx.plan.owner_of(hop["address"]) if hop["address"] else None
        hop["node"] = owner.name if owner else None
        hops.append(hop)
        if hop.get("reached") or hop["address"] is None:
            break
    return hops


@action("path")
def path(ctx: Context, s: S.PathStep) -> Outcome:
    ip = target_ip(ctx, s.to)
    hops = trace(ctx, s.on, ip, s.max_hops)
    routers = [h["node"] or h["address"] for h in hops if not h.get("reached")]
    reached = bool(hops and hops[-1].get("reached"))
    shown = " -> ".join([s.on, *[str(r) for r in routers], s.to if reached else "?"])
    if not reached:
        return failed(f"{ip} not reached: {shown}", hops=hops, routers=routers)
    if s.via is not None and routers != s.via:
        return failed(f"path {shown}, expected via {' -> '.join(s.via)}", hops=hops, routers=routers)
    return passed(shown, hops=hops, routers=routers)


def _link_index(ctx: Context, a: str, b: str) -> int:
    for k, lk in enumerate(ctx.plan.topology.data.links):
        if {lk.a, lk.b} == {a, b}:
            return k
    raise KeyError(f"{a}-{b}")


@action("link")
def link(ctx: Context, s: S.LinkState) -> Outcome:
    assert ctx.lab.network is not None
    k = _link_index(ctx, s.a, s.b)
    ctx.lab.network.set_link(k, up=s.state == "up")
    return passed(f"links[{k}] {s.a}-{s.b} is {s.state}", link=k)


@action("node")
def node_state(ctx: Context, s: S.NodeState) -> Outcome:
    node = ctx.lab.node(s.name)
    for itf in node.plan.interfaces:
        r = node.run(["ip", "link", "set", itf.name, "up" if s.state == "up" else "down"])
        if r.returncode:
            return failed(f"{s.name}: {itf.name}: {r.stderr.strip()}")
    if s.state == "up":
        # the kernel drops an interface's routes with it: put the node's own back
        ctx.lab.network.restore_routes(node)  # type: ignore[union-attr]
    return passed(f"{s.name}: {len(node.plan.interfaces)} interface(s) {s.state}")


@action("service")
def service(ctx: Context, s: S.ServiceState) -> Outcome:
    svc = next((x for x in ctx.lab.services if x.node.name == s.node and x.daemon == s.daemon), None)
    if svc is None:
        return failed(f"{s.node} runs no {s.daemon}")
    t0 = time.monotonic()
    if s.state == "stop":
        svc.stop()
        return passed(f"{s.daemon} stopped in {time.monotonic() - t0:.2f} s")
    svc.started_at = None
    svc.start()
    svc.wait_ready(20)
    return passed(f"{s.daemon} started and answering in {time.monotonic() - t0:.2f} s")


PROBE = r'''
import json, socket, sys, time
ip, port, proto, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
t0 = time.monotonic()
if proto == "tcp":
    s = socket.socket(); s.settimeout(timeout)
    try:
        s.connect((ip, port)); state = "open"
    except ConnectionRefusedError:
        state = "closed"
    except (socket.timeout, TimeoutError):
        state = "filtered"
    except OSError as e:
        state = "filtered" if e.errno in (113, 101) else "error: %s" % e
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(timeout)
    s.connect((ip, port))
    # a DNS server ignores garbage: ask it something real on port 53
    payload = bytes.fromhex("12340100000100000000000000000600 01".replace(" ", "")) if port == 53 else b"mail-lab probe"
    try:
        s.send(payload); s.recv(512); state = "open"
    except ConnectionRefusedError:
        state = "closed"
    except (socket.timeout, TimeoutError):
        state = "filtered"
print(json.dumps({"state": state, "seconds": round(time.monotonic() - t0, 4)}))
'''

LISTEN = r'''
import errno, socket, sys
port, proto = int(sys.argv[1]), sys.argv[2]
s = socket.socket() if proto == "tcp" else socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("0.0.0.0", port))
except OSError as e:
    if e.errno == errno.EADDRINUSE:
        print("inuse", flush=True)       # a daemon of the lab already listens there
        sys.exit(0)
    raise
if proto == "tcp":
    s.listen(16)
    print("listening", flush=True)
    while True:
        c, a = s.accept(); c.close()
else:
    print("listening", flush=True)
    while True:
        data, a = s.recvfrom(2048); s.sendto(b"ok", a)
'''


def probe_port(ctx: Context, on: str, ip: str, port: int, proto: str, timeout: float,
               listen_on: str | None = None) -> dict[str, Any]:
    listener = None
    if listen_on is not None:
        import subprocess
        node = ctx.lab.node(listen_on)
        listener = subprocess.Popen(node.argv([sys.executable, "-c", LISTEN, str(port), proto]),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        assert listener.stdout is not None
        line = listener.stdout.readline().decode()
        if "inuse" in line:
            listener.wait()
            listener = None
        elif "listening" not in line:
            listener.kill()
            listener.wait()
            raise RuntimeError(f"could not listen on {listen_on}:{proto}/{port}: {line.strip()}")
    try:
        r = ctx.lab.node(on).run([sys.executable, "-c", PROBE, ip, str(port), proto, str(timeout)],
                                 timeout=timeout + 15)
        res = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
    return res


@action("probe")
def probe(ctx: Context, s: S.Probe) -> Outcome:
    ip = target_ip(ctx, s.to)
    target = ctx.plan.owner_of(ip) or ctx.plan.node_by_fqdn(s.to)
    listen_on = target.name if (s.listen and target is not None) else None
    res = probe_port(ctx, s.on, ip, s.port, s.proto, s.timeout, listen_on)
    res.update({"target": ip, "port": s.port, "proto": s.proto})
    if res["state"] != s.expect:
        return failed(f"{s.proto}/{s.port} on {s.to} ({ip}) is {res['state']}, expected {s.expect}", **res)
    return passed(f"{s.proto}/{s.port} on {ip}: {res['state']}", **res)


def route_table(ctx: Context, on: str) -> list[dict[str, Any]]:
    r = ctx.lab.node(on).run(["ip", "-j", "-4", "route", "show"])
    try:
        return json.loads(r.stdout or "[]")
    except ValueError:
        return []


@action("routes")
def routes(ctx: Context, s: S.Routes) -> Outcome:
    table = route_table(ctx, s.on)
    details: dict[str, Any] = {"routes": table}
    if s.to is None:
        return passed(f"{len(table)} route(s)", **details)
    import ipaddress
    want = "default" if s.to == "default" else str(ipaddress.IPv4Network(s.to, strict=False))
    match = [r for r in table if r.get("dst") == want or
             (r.get("dst") not in (None, "default") and "/" not in r.get("dst", "") and want.endswith("/32")
              and r["dst"] == want[:-3])]
    if not match:
        return failed(f"{s.on} has no route to {want}", **details)
    r0 = match[0]
    if s.via is not None:
        via = target_ip(ctx, s.via)
        if r0.get("gateway") != via:
            return failed(f"{s.on}: {want} via {r0.get('gateway') or r0.get('dev')}, expected via {via}", **details)
    if s.protocol is not None and r0.get("protocol", "kernel") != s.protocol:
        return failed(f"{s.on}: {want} learnt by {r0.get('protocol')}, expected {s.protocol}", **details)
    return passed(f"{want} via {r0.get('gateway') or r0.get('dev')} ({r0.get('protocol', 'kernel')})", **details)


@action("sniff")
def sniff(ctx: Context, s: S.Sniff) -> Outcome:
    from lab.capture.capture import CaptureSpec, LinkCapture
    a, b = s.between
    ip_a, ip_b = target_ip(ctx, a), target_ip(ctx, b)
    node = ctx.lab.node(s.on)
    itf = node.plan.interfaces[0].name
    cap = LinkCapture(CaptureSpec(f"sniff-{s.on}-{a}-{b}", itf, node.pid,
                                  filter=f"icmp and host {ip_a} and host {ip_b}"), ctx.report_dir)
    cap.start()
    try:
        cap.wait_ready(10)
        pinged = _ping(ctx, a, ip_b, s.count, 0.05)
    finally:
        stats = cap.stop()
    pcap = cap.file
    captured = stats.packets or 0
    details = {"captured": captured, "pcap": str(pcap), "ping": pinged, "bystander": s.on}
    if pinged["received"] == 0:
        return failed(f"{a} could not ping {b}: nothing to observe", **details)
    if s.expect == "seen" and captured < s.count:
        return failed(f"{s.on} captured {captured} of {2 * s.count} packets between {a} and {b}", **details)
    if s.expect == "not_seen" and captured:
        return failed(f"{s.on} captured {captured} packets between {a} and {b}", **details)
    return passed(f"{s.on} captured {captured} of {2 * pinged['received']} packets between {a} and {b}", **details)


def zone_hosts(ctx: Context, fw: str) -> dict[str, str]:
    """One host per zone of a firewall: a node whose traffic reaches the firewall
    through that zone's interfaces (its subnet, or one behind other routers)."""
    plan = ctx.plan
    pol = plan.topology.data.firewalls[fw]
    zone_of_subnet = {sub: z for z, subs in pol.zones.items() for sub in subs}
    # spread each zone from the firewall's own subnets through the other routers
    queue = list(zone_of_subnet)
    while queue:
        sub = queue.pop(0)
        for r in plan.routers():
            if r.name == fw or not r.iface_on(sub):
                continue
            for i in r.interfaces:
                if i.subnet not in zone_of_subnet:
                    zone_of_subnet[i.subnet] = zone_of_subnet[sub]
                    queue.append(i.subnet)
    rank = {"host": 0, "mail": 1, "dns": 2, "dhcp": 3}
    reps: dict[str, tuple[int, str]] = {}
    for n in plan.nodes.values():
        if n.role not in rank or n.subnet not in zone_of_subnet or not ctx.lab.node(n.name).ip:
            continue
        zone = zone_of_subnet[n.subnet]
        if zone not in reps or rank[n.role] < reps[zone][0]:
            reps[zone] = (rank[n.role], n.name)
    return {z: name for z, (_, name) in reps.items()}


def matrix_expectation(plan: Any, fw: str, src_zone: str, dst_zone: str, port: str) -> bool:
    """Does the firewall's policy allow this (zone to zone, port)?"""
    pol = plan.topology.data.firewalls[fw]
    proto = port.split("/")[0]
    for rule in pol.allow:
        if rule.from_ != src_zone or rule.to != dst_zone:
            continue
        for p in rule.ports:
            if p == "any" or p == port:
                return True
            if "/" in p and p.split("/")[0] == proto and "-" in p.split("/")[1]:
                lo, hi = map(int, p.split("/")[1].split("-"))
                if lo <= int(port.split("/")[1]) <= hi:
                    return True
    return False


@action("firewall_matrix")
def firewall_matrix(ctx: Context, s: S.FirewallMatrix) -> Outcome:
    plan = ctx.plan
    pol = plan.topology.data.firewalls[s.node]
    reps = zone_hosts(ctx, s.node)
    rows = []
    wrong = []
    for src_zone, src in reps.items():
        for dst_zone, dst in reps.items():
            if src_zone == dst_zone:
                continue
            for port in s.ports:
                proto, num = port.split("/")
                allowed = matrix_expectation(plan, s.node, src_zone, dst_zone, port)
                ip = ctx.lab.node(dst).ip
                assert ip is not None
                res = probe_port(ctx, src, ip, int(num), proto, s.timeout, listen_on=dst)
                seen = res["state"]
                ok = (seen == "open") if allowed else (seen == "filtered")
                rows.append({"from": src_zone, "to": dst_zone, "src": src, "dst": dst, "port": port,
                             "policy": "allow" if allowed else "deny", "seen": seen, "ok": ok})
                if not ok:
                    wrong.append(f"{src_zone}->{dst_zone} {port}: policy {'allows' if allowed else 'denies'}, "
                                 f"probe from {src} to {dst} found it {seen}")
    missing = sorted(set(pol.zones) - set(reps))
    details = {"matrix": rows, "representatives": reps, "zones_without_a_host": missing}
    if wrong:
        return failed(f"{len(wrong)} of {len(rows)} probes disagree with the policy: " + "; ".join(wrong[:4]), **details)
    allowed = sum(r["policy"] == "allow" for r in rows)
    return passed(f"{len(rows)} probes ({allowed} allowed, {len(rows) - allowed} denied) match the policy", **details)


@action("impair")
def impair(ctx: Context, s: S.Impair) -> Outcome:
    """Apply loss on both node ends of a link inside their namespaces."""
    from lab.model.plan import Impairment
    from lab.runtime.impair import loss_ruleset, netem_available
    k = _link_index(ctx, s.a, s.b)
    t = ctx.plan.topology.data
    ends = [e for e in (s.a, s.b) if t.nodes[e].role != "switch"]
    applied = []
    counters: dict[str, int] = {}
    for end in ends:
        node = ctx.lab.node(end)
        itf = next(i.name for i in node.plan.interfaces if i.link == k)
        if netem_available():
            args = ["tc", "qdisc", "replace", "dev", itf, "root", "netem", "loss", f"{s.loss}%"] if s.loss else \
                ["tc", "qdisc", "del", "dev", itf, "root"]
            node.run(args)
        else:
            dropped = _loss_counter(node)
            if dropped is not None:
                counters[f"{end}:{itf}"] = dropped
            imp = Impairment(end, itf, k, s.loss, None, False, "out" if len(ends) == 2 else "both")
            text = loss_ruleset([imp]) if s.loss else "table inet labloss\ndelete table inet labloss\n"
            r = node.run(["nft", "-f", "-"], input=text)
            if r.returncode:
                return failed(f"{end}: nft refused the loss rule: {r.stderr.strip()}")
        applied.append(f"{end}:{itf}")
    how = "tc netem" if netem_available() else "nftables random drop (no netem in this kernel)"
    note = f"; the previous rule had dropped {sum(counters.values())} packet(s)" if counters else ""
    return passed(f"loss {s.loss:g}% on {', '.join(applied)} by {how}{note}", link=k, ends=applied,
                  dropped_before=counters)


def _loss_counter(node: Any) -> int | None:
    """Packets dropped so far by the node's loss table (None when it has none)."""
    r = node.run(["nft", "-j", "list", "table", "inet", "labloss"])
    if r.returncode:
        return None
    total = 0
    for item in json.loads(r.stdout).get("nftables", []):
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                total += int(expr["counter"].get("packets", 0))
    return total
