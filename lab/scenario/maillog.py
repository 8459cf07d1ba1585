"""A message's lines in a mail node's Postfix log, found by Message-ID, then by queue id."""

from __future__ import annotations

from lab.scenario.context import Context


def message_log(ctx: Context, node: str, label: str) -> list[str]:
    """The Postfix log lines of this node about a message (found by Message-ID, then by queue id)."""
    want = ctx.messages.get(label)
    if want is None:
        return []
    mids = set(want.get("message_ids") or [want.get("message_id")])
    path = ctx.lab.node(node).dir / "log" / "postfix.log"
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    qids = set()
    for line in lines:
        if "message-id=" in line and any(m in line for m in mids if m):
            parts = line.split(": ")
            if len(parts) > 1:
                qids.add(parts[1].split(":")[0].strip())
    return [line for line in lines if any(f": {q}:" in line for q in qids)]
