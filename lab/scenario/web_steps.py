"""Web actions: fetch a page directly or through the lab's proxy (``lab.httpclient`` inside the host)."""

from __future__ import annotations

import json
import sys
from typing import Any

from lab.model import scenario as S
from lab.scenario.context import Context, Outcome, action, failed, passed
from lab.scenario.netops import target_ip

WHAT = {"ok": "a page", "blocked": "a refusal by the proxy", "unreachable": "no connection"}


@action("http")
def http(ctx: Context, s: S.Http) -> Outcome:
    assert ctx.lab.run is not None
    payload: dict[str, Any] = {
        "url": s.url,
        "timeout": s.timeout,
        "ca": str(ctx.lab.run.state / "pki" / "ca.pem"),
        "keylog": str(ctx.keylog) if ctx.keylog else None,
    }
    if s.proxy is not None:
        payload.update(proxy=target_ip(ctx, s.proxy), proxy_port=s.proxy_port)
    r = ctx.lab.node(s.on).run([sys.executable, "-m", "lab.httpclient", json.dumps(payload)], timeout=s.timeout + 20)
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(
            f"the http client failed inside {s.on} (exit {r.returncode}): {r.stderr.strip()[-1500:]}"
        ) from None
    got = res.get("outcome")
    how = f"via {s.proxy}" if s.proxy else "directly"
    said = (
        f"HTTP {res.get('status')} {res.get('reason', '')}".strip()
        if res.get("status")
        else res.get("error", "no answer")
    )
    tls = f" over {res['tls_version']}" if res.get("tls_version") else ""
    if got != s.expect:
        return failed(f"{s.url} {how}: {said}{tls}; expected {WHAT[s.expect]}", **res)
    if s.expect == "ok" and s.contains and s.contains not in str(res.get("body", "")):
        return failed(f"{s.url} {how}: {said}, but the page lacks {s.contains!r}", **res)
    return passed(f"{s.url} {how}: {said}{tls} ({res.get('seconds', 0):.2f} s)", **res)
