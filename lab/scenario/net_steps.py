"""Network actions: ping, trace, links and nodes up and down, services, probes, routes, captures, loss, the firewall matrix."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lab.model import scenario as S
from lab.model.policy import PortSpec
from lab.runtime import impair as runtime_impair
from lab.scenario.context import Context, Outcome, action, failed, passed
from lab.scenario.netops import Listener, probe_port, route_table, rtt_samples, target_ip, trace
from lab.scenario.netops import ping as _ping


@action("ping")
def ping(ctx: Context, s: S.Ping) -> Outcome:
    ip = target_ip(ctx, s.to)
    r = _ping(ctx, s.on, ip, s.count, s.interval, s.size)
    rtt = r.get("rtt_ms")
    summary = f"{r['received']}/{r['sent']} replies, {r['loss']:g}% loss" + (
        f", rtt avg {rtt['avg']:.3f} ms" if rtt else ""
    )
    if s.expect == "reachable":
        if r["received"] == 0 or r["loss"] > s.max_loss:
            return failed(f"{s.to} ({ip}): {summary}, allowed {s.max_loss:g}%", **r)
        return passed(summary, **r)
    if r["received"]:
        return failed(f"{s.to} ({ip}) answered: {summary}", **r)
    return passed(f"no reply from {ip}, as expected", **r)


@action("path")
def path(ctx: Context, s: S.PathStep) -> Outcome:
    ip = target_ip(ctx, s.to)
    hops = trace(ctx, s.on, ip, s.max_hops)
    routers = [h["node"] or h["address"] for h in hops if not h.get("reached")]
    reached = bool(hops and hops[-1].get("reached"))
    shown = " -> ".join([s.on, *[str(r) for r in routers], s.to if reached else "?"])
    if not reached:
        why = next(
            (f" ({h['node'] or h['address']} says: {h['unreachable']})" for h in hops if h.get("unreachable")), ""
        )
        return failed(f"{ip} not reached: {shown}{why}", hops=hops, routers=routers, source=s.on)
    if s.via is not None and routers != s.via:
        return failed(f"path {shown}, expected via {' -> '.join(s.via)}", hops=hops, routers=routers, source=s.on)
    return passed(shown, hops=hops, routers=routers, source=s.on)


@action("rtt")
def rtt(ctx: Context, s: S.Rtt) -> Outcome:
    import statistics

    from lab.model.paths import path_delay
    from lab.model.topology import delay_seconds

    ip = target_ip(ctx, s.to)
    hops = trace(ctx, s.on, ip, 16)
    target = ctx.plan.owner_of(ip)
    nodes = [s.on, *[h["node"] for h in hops if not h.get("reached")], target.name if target else None]
    details: dict[str, Any] = {
        "path": nodes,
        "mechanism": runtime_impair.mechanism_text(runtime_impair.delay_mechanism()),
    }
    if None in nodes or not (hops and hops[-1].get("reached")):
        return failed(f"could not trace the path from {s.on} to {ip}: {nodes}", **details)
    pd = path_delay(ctx.plan, [str(n) for n in nodes])
    t = ctx.plan.topology.data.links
    details["links"] = [f"{t[k].a}-{t[k].b}" + (f" {t[k].delay}" if t[k].delay else "") for k in pd.links]
    expected = pd.rtt if s.expect == "auto" else delay_seconds(s.expect)
    if expected <= 0:
        return failed(f"no link on {' -> '.join(map(str, nodes))} has a delay: say what to expect", **details)
    r = rtt_samples(ctx, s.on, ip, s.count, s.interval)
    times = r["times_ms"]
    details.update(r)
    if len(times) < max(3, s.count // 2):
        return failed(f"{len(times)} of {s.count} pings to {ip} answered: too few to measure", **details)
    want = expected * 1000
    median = statistics.median(times)
    err = (median - want) / want * 100
    details.update(
        expected_ms=round(want, 3),
        median_ms=round(median, 3),
        mean_ms=round(statistics.fmean(times), 3),
        min_ms=min(times),
        max_ms=max(times),
        error_pct=round(err, 2),
    )
    allowed = max(want * s.tolerance / 100, s.slack_ms)
    details["allowed_ms"] = round(allowed, 3)
    said = (
        f"median {median:.2f} ms over {len(times)} pings, expected {want:.2f} ms ({err:+.1f}%,"
        f" allowed +-{s.tolerance:g}% or {s.slack_ms:g} ms, whichever is more)"
    )
    if abs(median - want) > allowed:
        return failed(said, **details)
    return passed(said, **details)


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
    return passed(f"links[{k}] {s.a}-{s.b} is {s.state}", link=k, a=s.a, b=s.b, state=s.state)


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


@action("routes")
def routes(ctx: Context, s: S.Routes) -> Outcome:
    table = route_table(ctx, s.on)
    details: dict[str, Any] = {"routes": table}
    if s.to is None:
        return passed(f"{len(table)} route(s)", **details)
    import ipaddress

    want = "default" if s.to == "default" else str(ipaddress.IPv4Network(s.to, strict=False))
    match = [
        r
        for r in table
        if r.get("dst") == want
        or (
            r.get("dst") not in (None, "default")
            and "/" not in r.get("dst", "")
            and want.endswith("/32")
            and r["dst"] == want[:-3]
        )
    ]
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
    cap = LinkCapture(
        CaptureSpec(f"sniff-{s.on}-{a}-{b}", itf, node.pid, filter=f"icmp and host {ip_a} and host {ip_b}"),
        ctx.report_dir,
    )
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


def cell_note(ctx: Context, node: str, src: str, dst: str, port: PortSpec, allowed: bool, seen: str) -> str:
    """Why a cell of the matrix reads as it does, where a student would wonder."""
    fw = ctx.plan.firewalls[node]
    fwd = next((f for f in fw.forwards if f.zone == src and f.port.proto == port.proto and f.port.lo == port.lo), None)
    target_zone = fw.zone_of_subnet(ctx.plan.nodes[fwd.to_node].subnet or "") if fwd is not None else None
    if fwd is not None and not allowed and target_zone == dst:
        ifaces = [ctx.plan.nodes[node].iface_on(sub) for sub in fw.zone(src).subnets]
        public = ", ".join(i.ip for i in ifaces if i is not None and i.ip) or "its public address"
        return (
            f"denied on purpose: the probe goes to the private address of the {dst} host, which {src} may not reach; "
            f"the port forward on {port} works on the firewall's own address ({public}) and takes it to "
            f"{fwd.to_node} {fwd.to_ip}:{fwd.to_port} (the probes of the port-forward step check that)"
        )
    if allowed and seen == "filtered":
        return "the policy allows it, yet nothing answered: a rule is missing, or the host's listener or route is"
    if not allowed and seen == "open":
        return "the policy denies it, yet the connection opened: the ruleset lets more through than the policy says"
    if not allowed and seen == "closed":
        return "a reset came back: the firewall should drop silently, or another host answered for it"
    if allowed and any(m == (src, dst) for m in fw.masquerade):
        return f"allowed; the {dst} host sees the firewall's address, not the {src} host (masquerade)"
    return ""


@action("firewall_matrix")
def firewall_matrix(ctx: Context, s: S.FirewallMatrix) -> Outcome:
    fw = ctx.plan.firewalls[s.node]
    reps = zone_hosts(ctx, s.node)
    cells = [
        (src_zone, dst_zone, port) for src_zone in reps for dst_zone in reps if src_zone != dst_zone for port in s.ports
    ]
    # one listener per (destination, port), every source probing it at once; groups in parallel
    groups: dict[tuple[str, str], list[tuple[str, str, PortSpec]]] = {}
    for src_zone, dst_zone, port in cells:
        groups.setdefault((reps[dst_zone], str(port)), []).append((src_zone, dst_zone, port))

    def probe_group(items: list[tuple[str, str, PortSpec]]) -> list[dict[str, Any]]:
        _, dst_zone, port = items[0]
        dst = reps[dst_zone]
        ip = ctx.lab.node(dst).ip
        assert ip is not None
        with Listener(ctx, dst, port.lo, port.proto), ThreadPoolExecutor(max_workers=len(items)) as pool:
            results = list(
                pool.map(lambda it: probe_port(ctx, reps[it[0]], ip, it[2].lo, it[2].proto, s.timeout), items)
            )
        rows = []
        for (src_zone, dz, p), res in zip(items, results):
            allowed = fw.allows(src_zone, dz, p.proto, p.lo)
            seen = res["state"]
            rows.append(
                {
                    "from": src_zone,
                    "to": dz,
                    "src": reps[src_zone],
                    "dst": dst,
                    "port": str(p),
                    "policy": "allow" if allowed else "deny",
                    "seen": seen,
                    "ok": (seen == "open") if allowed else (seen == "filtered"),
                    "note": cell_note(ctx, s.node, src_zone, dz, p, allowed, seen),
                }
            )
        return rows

    ctx.say(f"firewall matrix of {s.node}: {len(cells)} probes in {len(groups)} group(s)")
    with ThreadPoolExecutor(max_workers=min(8, len(groups) or 1)) as pool:
        rows = [r for group in pool.map(probe_group, groups.values()) for r in group]
    order = {c[:2] + (str(c[2]),): k for k, c in enumerate(cells)}
    rows.sort(key=lambda r: order[(r["from"], r["to"], r["port"])])
    wrong = [
        f"{r['from']}->{r['to']} {r['port']}: policy {'allows' if r['policy'] == 'allow' else 'denies'}, "
        f"probe from {r['src']} to {r['dst']} found it {r['seen']}"
        for r in rows
        if not r["ok"]
    ]
    missing = sorted(z.name for z in fw.zones if z.name not in reps)
    details = {"matrix": rows, "representatives": reps, "zones_without_a_host": missing}
    if wrong:
        return failed(
            f"{len(wrong)} of {len(rows)} probes disagree with the policy: " + "; ".join(wrong[:4]), **details
        )
    allowed = sum(r["policy"] == "allow" for r in rows)
    return passed(f"{len(rows)} probes ({allowed} allowed, {len(rows) - allowed} denied) match the policy", **details)


@action("impair")
def impair(ctx: Context, s: S.Impair) -> Outcome:
    """Apply loss on both node ends of a link inside their namespaces."""
    k = _link_index(ctx, s.a, s.b)
    t = ctx.plan.topology.data
    ends = [e for e in (s.a, s.b) if t.nodes[e].role != "switch"]
    applied = []
    counters: dict[str, int] = {}
    how = ""
    for end in ends:
        node = ctx.lab.node(end)
        itf = next(i.name for i in node.plan.interfaces if i.link == k)
        how, dropped = runtime_impair.set_loss(node, itf, k, s.loss, "out" if len(ends) == 2 else "both")
        if dropped is not None:
            counters[f"{end}:{itf}"] = dropped
        applied.append(f"{end}:{itf}")
    note = f"; the previous rule had dropped {sum(counters.values())} packet(s)" if counters else ""
    return passed(
        f"loss {s.loss:g}% on {', '.join(applied)} by {how}{note}", link=k, ends=applied, dropped_before=counters
    )
