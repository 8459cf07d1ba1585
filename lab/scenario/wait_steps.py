"""wait_for: poll a condition until it holds (and holds long enough), never a bare sleep.

Each condition is a function registered in ``CONDITIONS``: given the context and the
step, it returns a probe, ``() -> (true?, what it saw)``, or an ``Outcome`` when it can
already tell (a message that was never accepted cannot be delivered).  The polling
itself is ``lab.runtime.proc.wait_until``, like every other wait of the harness.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from lab.model import scenario as S
from lab.runtime import proc
from lab.runtime.bridge import port_states
from lab.runtime.node import netns
from lab.scenario.context import Context, Outcome, action, failed, passed
from lab.scenario.maillog import message_log
from lab.scenario.netops import ping, route_table, target_ip, trace
from lab.services.frr import Frr
from lab.services.mail import Postfix

Probe = Callable[[], tuple[bool, str]]


#: seconds a static network's tables get to settle after a link event before "converged" gives up
STATIC_SETTLE = 2.0


class Settled(Exception):
    """Raised by a probe when its condition can no longer come true (a message that left
    the queue without being deferred): the wait fails at once instead of running out."""


CONDITIONS: dict[str, Callable[[Context, S.WaitFor], "Probe | Outcome"]] = {}


def condition(
    name: str,
) -> Callable[[Callable[[Context, S.WaitFor], "Probe | Outcome"]], Callable[[Context, S.WaitFor], "Probe | Outcome"]]:
    def register(
        fn: Callable[[Context, S.WaitFor], "Probe | Outcome"],
    ) -> Callable[[Context, S.WaitFor], "Probe | Outcome"]:
        CONDITIONS[name] = fn
        return fn

    return register


@action("wait_for")
def wait_for(ctx: Context, s: S.WaitFor) -> Outcome:
    probe = CONDITIONS[s.condition](ctx, s)
    if isinstance(probe, Outcome):
        return probe
    seen = {"last": ""}
    start = told = time.monotonic()

    def check() -> bool:
        nonlocal told
        ok, seen["last"] = probe()
        now = time.monotonic()
        if not ok and now - told >= 1.0:
            told = now
            ctx.say(f"waiting for {s.condition} ({now - start:.0f}/{s.timeout:g} s): {seen['last']}")
        return ok

    try:
        w = proc.wait_until(check, s.timeout, hold=s.hold, interval=0.02)
    except Settled as exc:
        waited = time.monotonic() - start
        return failed(f"never {s.condition}, seen after {waited:.2f} s: {exc}", waited=round(waited, 3))
    if w.ok:
        held = f", held {s.hold:g} s" if s.hold else ""
        return passed(f"after {w.seconds:.2f} s{held}: {seen['last']}", waited=round(w.seconds, 3))
    how = f" for {s.hold:g} s in a row" if s.hold else ""
    return failed(f"not {s.condition}{how} within {s.timeout:g} s ({seen['last']})", waited=s.timeout)


@condition("delivered")
def _delivered(ctx: Context, s: S.WaitFor) -> Probe | Outcome:
    assert s.mailbox is not None
    store = ctx.mailbox_store(s.mailbox)
    want = ctx.messages.get(s.message) if s.message else None
    if s.message and want is None:
        return failed(f"message '{s.message}' was never accepted; it cannot be delivered")
    mailbox = s.mailbox

    def probe() -> tuple[bool, str]:
        msgs = store.maildir_messages(mailbox)
        if want is None:
            return bool(msgs), f"{len(msgs)} message(s)"
        ids = set(want.get("message_ids") or [want["message_id"]])
        hit = [m for m in msgs if m["message_id"] in ids]
        need = s.count or 1
        return len(hit) >= need, f"{len(msgs)} message(s), {len(hit)} of the {need} wanted"

    return probe


@condition("deferred")
def _deferred(ctx: Context, s: S.WaitFor) -> Probe | Outcome:
    assert s.node is not None and s.message is not None
    if ctx.messages.get(s.message) is None:
        return failed(f"message '{s.message}' was never accepted")
    node, label = s.node, s.message

    def probe() -> tuple[bool, str]:
        lines = message_log(ctx, node, label)
        deferred = [line for line in lines if "status=deferred" in line]
        if deferred:
            return True, deferred[-1].split("status=deferred", 1)[1].strip()
        if any(line.endswith(": removed") for line in lines):  # it left the queue: no retry to defer
            done = [line.split(" status=", 1)[1] for line in lines if " status=" in line]
            raise Settled(f"{node} took it out of its queue ({'; '.join(done) or 'removed'})")
        return False, f"{len(lines)} log line(s), none deferred yet"

    return probe


@condition("queue_empty")
def _queue_empty(ctx: Context, s: S.WaitFor) -> Probe | Outcome:
    assert s.node is not None
    pf = ctx.lab.service(s.node, Postfix)
    assert pf is not None

    def probe() -> tuple[bool, str]:
        q = pf.queue()
        return not q, f"{len(q)} message(s) queued"

    return probe


@condition("converged")
def _converged(ctx: Context, s: S.WaitFor) -> Probe | Outcome:
    expected = ctx.lab.expected_prefixes()
    # with no routing protocol the tables are what the bring-up installed: once a link
    # event has settled (STATIC_SETTLE s) nothing will add the routes that are missing
    learns = bool(ctx.lab.services_of(Frr))
    start = time.monotonic()

    def probe() -> tuple[bool, str]:
        missing = {}
        for r in ctx.plan.routers():
            have = {x.get("dst") for x in route_table(ctx, r.name)}
            lack = sorted(p for p in expected if p not in have)
            if lack:
                missing[r.name] = lack
        if missing and not learns and time.monotonic() - start > STATIC_SETTLE:
            mode = ctx.plan.topology.routing.mode
            raise Settled(f"no router runs a routing protocol (routing: {mode}), so nothing adds missing {missing}")
        return not missing, (
            f"missing {missing}"
            if missing
            else f"{len(ctx.plan.routers())} router(s) route to all {len(expected)} subnets"
        )

    return probe


@condition("reachable")
def _reachable(ctx: Context, s: S.WaitFor) -> Probe | Outcome:
    assert s.on and s.to
    ip, on, to = target_ip(ctx, s.to), s.on, s.to

    def probe() -> tuple[bool, str]:
        r = ping(ctx, on, ip, 1, 0.2, wait=0.5)
        return r["received"] > 0, f"{to} ({ip}) {'answers' if r['received'] else 'silent'}"

    return probe


@condition("path")
def _path(ctx: Context, s: S.WaitFor) -> Probe | Outcome:
    assert s.on and s.to and s.via is not None
    ip, on, to, via = target_ip(ctx, s.to), s.on, s.to, s.via

    def probe() -> tuple[bool, str]:
        hops = trace(ctx, on, ip, 16)
        routers = [h["node"] or h["address"] for h in hops if not h.get("reached")]
        reached = bool(hops and hops[-1].get("reached"))
        shown = " -> ".join([on, *map(str, routers), to if reached else "?"])
        return reached and routers == via, shown

    return probe


@condition("stp_stable")
def _stp_stable(ctx: Context, s: S.WaitFor) -> Probe | Outcome:
    assert ctx.lab.network is not None
    bridges = [br for name, br in ctx.lab.network.bridges.items() if ctx.plan.topology.data.nodes[name].stp]
    stable: dict[str, Any] = {}

    def probe() -> tuple[bool, str]:
        states = port_states(bridges)
        unsettled = {p: st for p, st in states.items() if st in ("listening", "learning")}
        blocked = sorted(p for p, st in states.items() if st == "blocking")
        # settled means: no port moving, and the same states for a whole STP hello
        # period and more (a topology change starts with ports still blocking)
        now = time.monotonic()
        if unsettled or states != stable.get("states"):
            stable["states"], stable["since"] = states, now
        held = now - stable["since"]
        ok = bool(states) and not unsettled and held >= 2.5
        return ok, (
            f"settling: {unsettled}"
            if unsettled
            else f"{len(states)} ports settled for {held:.1f} s, blocked: {blocked or 'none'}"
        )

    return probe


@condition("ospf_full")
def _ospf_full(ctx: Context, s: S.WaitFor) -> Probe | Outcome:
    routers = [svc for svc in ctx.lab.services_of(Frr) if svc.plan.mode == "ospf"]
    if not routers:
        mode = ctx.plan.topology.routing.mode
        return failed(f"no router runs OSPF in this topology (routing: {mode}): no adjacency can become Full")

    def probe() -> tuple[bool, str]:
        bad = {}
        for svc in routers:
            want = svc.plan.adjacencies
            full = [n for n in svc.ospf_neighbors() if str(n.get("state", "")).startswith("Full")]
            if len(full) < want:
                bad[svc.node.name] = f"{len(full)}/{want} Full"
        return not bad, (f"not yet: {bad}" if bad else "every adjacency Full")

    return probe


@condition("port_open")
def _port_open(ctx: Context, s: S.WaitFor) -> Probe | Outcome:
    assert s.on and s.node and s.port
    target, port = ctx.lab.node(s.node).ip, s.port
    pid = ctx.lab.node(s.on).pid

    def probe() -> tuple[bool, str]:
        with netns(pid):
            sock = socket.socket()
        sock.settimeout(0.5)
        try:
            sock.connect((target, port))
            return True, "open"
        except OSError as exc:
            return False, str(exc)
        finally:
            sock.close()

    return probe
