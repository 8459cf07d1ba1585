"""wait_for: poll a condition until it holds (and holds long enough), never a bare sleep."""
from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

from lab.model import scenario as S

from lab.runtime.node import netns
from lab.scenario.mail_steps import message_log
from lab.scenario.net_steps import _ping, route_table, target_ip
from lab.scenario.steps import Context, Outcome, action, failed, passed
from lab.services.mail import Postfix



@action("wait_for")
def wait_for(ctx: Context, s: S.WaitFor) -> Outcome:
    deadline = time.monotonic() + s.timeout
    probe: Callable[[], tuple[bool, str]]
    if s.condition == "delivered":
        assert s.mailbox is not None
        store = ctx.mailbox_store(s.mailbox)
        want = ctx.messages.get(s.message) if s.message else None
        if s.message and want is None:
            return failed(f"message '{s.message}' was never accepted; it cannot be delivered")

        def probe() -> tuple[bool, str]:
            msgs = store.maildir_messages(s.mailbox)
            if want is None:
                return bool(msgs), f"{len(msgs)} message(s)"
            ids = set(want.get("message_ids") or [want["message_id"]])
            hit = [m for m in msgs if m["message_id"] in ids]
            need = s.count or 1
            return len(hit) >= need, f"{len(msgs)} message(s), {len(hit)} of the {need} wanted"
    elif s.condition == "deferred":
        assert s.node is not None and s.message is not None
        pf = ctx.lab.service(s.node, Postfix)
        assert isinstance(pf, Postfix)
        want = ctx.messages.get(s.message)
        if want is None:
            return failed(f"message '{s.message}' was never accepted")

        def probe() -> tuple[bool, str]:
            lines = message_log(ctx, s.node, s.message)
            deferred = [line for line in lines if "status=deferred" in line]
            if deferred:
                return True, deferred[-1].split("status=deferred", 1)[1].strip()
            return False, f"{len(lines)} log line(s), none deferred yet"
    elif s.condition == "queue_empty":
        assert s.node is not None
        pf = ctx.lab.service(s.node, Postfix)
        assert isinstance(pf, Postfix)

        def probe() -> tuple[bool, str]:
            q = pf.queue()
            return not q, f"{len(q)} message(s) queued"
    elif s.condition == "converged":
        expected = ctx.lab.expected_prefixes()

        def probe() -> tuple[bool, str]:
            missing = {}
            for r in ctx.plan.routers():
                have = {x.get("dst") for x in route_table(ctx, r.name)}
                lack = sorted(p for p in expected if p not in have)
                if lack:
                    missing[r.name] = lack
            return not missing, (f"missing {missing}" if missing else
                                 f"{len(ctx.plan.routers())} router(s) route to all {len(expected)} subnets")
    elif s.condition == "reachable":
        assert s.on and s.to
        ip = target_ip(ctx, s.to)

        def probe() -> tuple[bool, str]:
            r = _ping(ctx, s.on, ip, 1, 0.2, wait=0.5)
            return r["received"] > 0, f"{s.to} ({ip}) {'answers' if r['received'] else 'silent'}"
    elif s.condition == "stp_stable":
        assert ctx.lab.network is not None
        bridges = [br for name, br in ctx.lab.network.bridges.items() if ctx.plan.topology.data.nodes[name].stp]

        def probe() -> tuple[bool, str]:
            import subprocess
            states = {}
            for br in bridges:
                r = subprocess.run(["bridge", "-j", "link", "show", "master", br], capture_output=True, text=True)
                for port in json.loads(r.stdout or "[]"):
                    states[port["ifname"]] = port.get("state", "?")
            unsettled = {p: st for p, st in states.items() if st in ("listening", "learning")}
            blocked = sorted(p for p, st in states.items() if st == "blocking")
            # settled means: no port moving, and the same states for a whole STP hello
            # period and more (a topology change starts with ports still blocking)
            now = time.monotonic()
            if unsettled or states != stable.get("states"):
                stable["states"], stable["since"] = states, now
            held = now - stable["since"]
            ok = bool(states) and not unsettled and held >= 2.5
            return ok, (f"settling: {unsettled}" if unsettled else
                        f"{len(states)} ports settled for {held:.1f} s, blocked: {blocked or 'none'}")
        stable: dict[str, Any] = {}
    elif s.condition == "ospf_full":
        from lab.services.frr import Frr

        def probe() -> tuple[bool, str]:
            bad = {}
            for svc in ctx.lab.services:
                if isinstance(svc, Frr):
                    nbrs = svc.ospf_neighbors()
                    want = len([i for i in svc.routing["interfaces"] if not i["passive"]])
                    full = [n for n in nbrs if str(n.get("state", "")).startswith("Full")]
                    if len(full) < want:
                        bad[svc.node.name] = f"{len(full)}/{want} Full"
            return not bad, (f"not yet: {bad}" if bad else "every adjacency Full")
    else:
        assert s.on and s.node and s.port
        target = ctx.lab.node(s.node).ip
        pid = ctx.lab.node(s.on).pid

        def probe() -> tuple[bool, str]:
            with netns(pid):
                sock = socket.socket()
            sock.settimeout(0.5)
            try:
                sock.connect((target, s.port))
                return True, "open"
            except OSError as exc:
                return False, str(exc)
            finally:
                sock.close()
    start = time.monotonic()
    last = ""
    delay = 0.02
    true_since: float | None = None
    while True:
        ok, last = probe()
        now = time.monotonic()
        if ok:
            true_since = now if true_since is None else true_since
            if now - true_since >= s.hold:
                held = f", held {now - true_since:.1f} s" if s.hold else ""
                return passed(f"after {now - start:.2f} s{held}: {last}", waited=round(now - start, 3))
            delay = 0.2
        else:
            true_since = None
        if time.monotonic() > deadline + (s.hold if true_since is not None else 0):
            how = f" for {s.hold:g} s in a row" if s.hold else ""
            return failed(f"not {s.condition}{how} within {s.timeout:g} s ({last})", waited=s.timeout)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
