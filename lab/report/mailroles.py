"""The role each hop of a mail trace plays, in the words of the Internet mail architecture.

RFC 5598 names the agents a message passes through; a trace hop is one of them at work:

- MUA, the user's mail client: it submits the message (the scenario's send step on a
  host) and, at the other end, fetches it from the mailbox (IMAP or POP3);
- MSA, the submission agent: the server's submission service (port 587, or 465 with TLS
  from the first byte) that checks the user's login and accepts the message, with what
  it does before the message is queued (cleanup, the milter's verdict);
- MTA, the transfer agent: the queue, the MX lookup and the relay from server to server
  on port 25, and a server receiving on port 25;
- MDA, the delivery agent: Postfix's LMTP client handing the message to Dovecot, and
  Dovecot saving it into the mailbox.

Pure: hop dicts in (as ``lab.report.mailtrace`` builds them), the same dicts with
``role``, ``role_node`` (the node playing it) and ``role_note`` out.
"""

from __future__ import annotations

from typing import Any

NOTES = {
    "MUA": "the user's mail client (MUA)",
    "MSA": "the submission agent (MSA): checks the login, accepts the message for its user",
    "MTA": "the transfer agent (MTA): queues the message and moves it between servers on port 25",
    "MDA": "the delivery agent (MDA): Postfix hands the message over LMTP to Dovecot, which saves it in the mailbox",
}
SUBMISSION_SERVICES = frozenset({"submission", "smtps"})
#: stages whose role is fixed, whatever the queue
FIXED = {
    "sent": "MUA",
    "submitted": "MSA",
    "received": "MTA",
    "queued": "MTA",
    "mx": "MTA",
    "relay": "MTA",
    "removed": "MTA",
    "delivery": "MDA",
    "saved": "MDA",
    "fetch": "MUA",
}


def assign(hops: list[dict[str, Any]], node_of: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Give every hop its role; ``node_of`` maps an address to its node (for the MUAs)."""
    node_of = node_of or {}
    entry: dict[tuple[str, str], str] = {}  # (node, queue id) -> how the message came in
    for h in hops:
        if h.get("stage") in ("submitted", "received") and h.get("queue_id"):
            entry[(h["node"], h["queue_id"])] = FIXED[h["stage"]]
    for h in hops:
        stage = h.get("stage", "")
        if stage in FIXED:
            role = FIXED[stage]
        elif stage == "connect":
            role = "MSA" if h.get("service") in SUBMISSION_SERVICES else "MTA"
        else:  # cleanup, milter, rejected: part of accepting the message, by whoever accepts it
            role = entry.get((h.get("node", ""), h.get("queue_id", "")), "MTA")
        h["role"] = role
        h["role_node"] = h.get("node", "")
        note = NOTES[role]
        if role == "MUA":
            h["role_node"] = h.get("role_node_hint") or node_of.get(str(h.get("client", "")), "") or h["role_node"]
            how = f"fetches it over {str(h.get('protocol', '')).upper()}" if stage == "fetch" else "submits it"
            note = f"{note} {how}" + (f", on {h['role_node']}" if h["role_node"] else "")
        h["role_note"] = note
    return hops


def mua_hop(
    msg: dict[str, Any], hops: list[dict[str, Any]], summary: dict[str, Any], node_of: dict[str, str]
) -> dict[str, Any] | None:
    """The MUA's part: the send step on its host, dated by the connection the server logged.

    None when the trace found no submission (the hops begin with its connect or accept):
    nothing would say the client's message reached a server.
    """
    sub = next((h for h in hops if h.get("stage") == "submitted"), None)
    first = next((h for h in hops if h.get("stage") in ("connect", "submitted")), None)
    if sub is None or first is None:
        return None
    qid = msg.get("queue_id")
    step = next(
        (
            s.get("index")
            for s in summary.get("steps", [])
            if s.get("kind") == "send" and qid and (s.get("details") or {}).get("queue_id") == qid
        ),
        None,
    )
    node = str(msg.get("on") or node_of.get(str(sub.get("client", "")), ""))
    tls = msg.get("tls")
    how = f"over {tls}" if tls else "in clear"
    return {
        "node": node or str(sub.get("client", "")),
        "stage": "sent",
        "text": f"{msg.get('sender')}'s mail client submits it to {msg.get('server')}:{msg.get('port')} {how}",
        "time": first.get("time", ""),
        "ts": first.get("ts"),
        "daemon": "client",
        "log": "",
        "lineno": None,
        "line": "",
        "status": "ok",
        "client": sub.get("client"),
        "port": msg.get("port"),
        "step": step,
        "role_node_hint": node,
    }


def chain(hops: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The roles in order, each (role, node) once in a row: MUA pc1 → MSA mail → MTA mail → ..."""
    out: list[dict[str, str]] = []
    for h in hops:
        if "role" not in h or h.get("status") not in ("ok", None) or h.get("stage") == "removed":
            continue  # leaving the queue is bookkeeping, not a hand-over
        item = {"role": str(h["role"]), "node": str(h.get("role_node", ""))}
        if h.get("stage") == "fetch":
            item["via"] = str(h.get("protocol", "")).upper()
        if not out or (out[-1]["role"], out[-1]["node"]) != (item["role"], item["node"]):
            out.append(item)
    return out
