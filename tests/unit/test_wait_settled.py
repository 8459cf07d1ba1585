"""Waits that know when their condition can no longer come true fail at once, with why,
instead of running out their timeout (what most of a broken lab's time used to be)."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_deferred_wait_fails_at_once_when_the_message_left_the_queue(tmp_path: Path) -> None:
    """A message sent (or bounced) and removed will never be deferred: the wait says so
    at once instead of running out its timeout (the weakened labs' commonest wait)."""
    import time
    from types import SimpleNamespace

    from lab.model.actions import WaitFor
    from lab.scenario.wait_steps import wait_for

    log = tmp_path / "mail" / "log" / "postfix.log"
    log.parent.mkdir(parents=True)
    log.write_text(
        "Dec 01 17:19:13 mail postfix/cleanup[9060]: 241CC117: message-id=<stripped.r@mail-lab.test>\n"
        "Dec 01 17:19:13 mail postfix/smtp[9061]: 241CC117: to=<carol@b>, relay=mx.b[198.51.100.10]:25,"
        " status=sent (250 Ok)\n"
        "Dec 01 17:19:13 mail postfix/qmgr[9000]: 241CC117: removed\n"
    )
    ctx = SimpleNamespace(
        messages={"stripped": {"message_id": "<stripped.r@mail-lab.test>"}},
        lab=SimpleNamespace(node=lambda name: SimpleNamespace(dir=tmp_path / name)),
        say=lambda msg: None,
    )
    step = WaitFor(condition="deferred", node="mail", message="stripped", timeout=20)
    t = time.monotonic()
    out = wait_for(ctx, step)  # type: ignore[arg-type]
    assert time.monotonic() - t < 5
    assert out.status == "failed" and "never deferred" in out.message and "status=sent" not in out.message
    assert "mail took it out of its queue (sent (250 Ok))" in out.message, out.message
    # still queued and not deferred yet: it keeps waiting (here until a short timeout)
    log.write_text(log.read_text().replace("removed", "active"))
    out = wait_for(ctx, WaitFor(condition="deferred", node="mail", message="stripped", timeout=0.3))  # type: ignore[arg-type]
    assert out.status == "failed" and "within 0.3 s" in out.message


def test_converged_gives_up_soon_when_no_router_learns_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Static routing: the tables are what the bring-up installed, so a missing route will
    never come; the wait says so after STATIC_SETTLE s instead of its whole timeout."""
    import time
    from types import SimpleNamespace

    from lab.model.actions import WaitFor
    from lab.scenario import wait_steps

    tables = {"r1": [{"dst": "10.1.1.0/24"}]}
    monkeypatch.setattr(wait_steps, "route_table", lambda ctx, name: tables[name])
    monkeypatch.setattr(wait_steps, "STATIC_SETTLE", 0.2)
    ctx = SimpleNamespace(
        lab=SimpleNamespace(expected_prefixes=lambda: {"10.1.1.0/24", "10.1.2.0/24"}, services_of=lambda cls: []),
        plan=SimpleNamespace(
            routers=lambda: [SimpleNamespace(name="r1")],
            topology=SimpleNamespace(routing=SimpleNamespace(mode="static")),
        ),
        say=lambda msg: None,
    )
    t = time.monotonic()
    out = wait_steps.wait_for(ctx, WaitFor(condition="converged", timeout=20))  # type: ignore[arg-type]
    assert time.monotonic() - t < 5
    assert out.status == "failed" and "no router runs a routing protocol (routing: static)" in out.message
    assert "10.1.2.0/24" in out.message
    tables["r1"].append({"dst": "10.1.2.0/24"})  # complete: passes at once
    assert wait_steps.wait_for(ctx, WaitFor(condition="converged", timeout=20)).status == "passed"  # type: ignore[arg-type]
