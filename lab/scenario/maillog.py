"""A message's lines in a mail node's Postfix log, found by Message-ID, then by queue id,
with the connection lines of the delivery agent that carried it."""

from __future__ import annotations

import re

from lab.scenario.context import Context

# "Dec 01 17:19:13 mail postfix/smtp[9061]: 241CC117: to=<...>": a delivery agent, then the queue id
_PROC = re.compile(r" (postfix(?:-[\w.-]+)?/(?:smtp|lmtp)\[\d+\]): ")
_QID = re.compile(r"^([0-9A-F]{6,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}): ")


def message_log(ctx: Context, node: str, label: str) -> list[str]:
    """The Postfix log lines of this node about a message (found by Message-ID, then by queue id)."""
    want = ctx.messages.get(label)
    if want is None:
        return []
    mids = {m for m in set(want.get("message_ids") or [want.get("message_id")]) if m}
    path = ctx.lab.node(node).dir / "log" / "postfix.log"
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return lines_about(lines, mids)


def lines_about(lines: list[str], mids: set[str]) -> list[str]:
    """The lines with the queue ids of these Message-IDs, and each delivery agent's lines
    without a queue id just before its line about the message: the TLS connection it
    made for it ("Verified TLS connection established to ..." is logged per connection,
    with no queue id, by the smtp process that then logs the message's status)."""
    qids = set()
    for line in lines:
        if "message-id=" in line and any(m in line for m in mids):
            parts = line.split(": ")
            if len(parts) > 1:
                qids.add(parts[1].split(":")[0].strip())
    out: list[str] = []
    pending: dict[str, list[str]] = {}  # process -> its lines since its last queue-id line
    for line in lines:
        m = _PROC.search(line)
        proc = m.group(1) if m else ""
        rest = line[m.end() :] if m else ""
        if any(f": {q}:" in line for q in qids):
            out += pending.pop(proc, [])
            out.append(line)
        elif m and _QID.match(rest):
            pending.pop(proc, None)  # that process moved on to another message
        elif m:
            pending.setdefault(proc, []).append(line)
    return out
