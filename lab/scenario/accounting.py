"""Accounting: for every recipient, messages accepted vs delivered vs fetched.

Counted from the Maildirs Dovecot wrote (by Message-ID, so a duplicate delivery
shows), for every message a send or flood step got accepted.  Lost and duplicated
messages must be 0: the check becomes a result of its own at the end of a run.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from lab.scenario.context import Context, Outcome, failed, passed


def account(ctx: Context) -> tuple[list[dict[str, Any]], Outcome | None]:
    per_rcpt: dict[str, dict[str, Any]] = {}
    for _label, m in ctx.messages.items():
        ids = list(m.get("message_ids") or [m.get("message_id")])
        for rcpt in m.get("to", []):
            try:
                store = ctx.mailbox_store(rcpt)
            except KeyError:
                continue  # not a mailbox of this lab
            row = per_rcpt.setdefault(
                rcpt,
                {
                    "recipient": rcpt,
                    "accepted": 0,
                    "delivered": 0,
                    "fetched": 0,
                    "lost": 0,
                    "duplicated": 0,
                    "lost_ids": [],
                    "duplicated_ids": [],
                },
            )
            seen = Counter(x["message_id"] for x in store.maildir_messages(rcpt))
            for mid in ids:
                row["accepted"] += 1
                n = seen.get(mid, 0)
                row["delivered"] += min(n, 1)
                if n == 0:
                    row["lost"] += 1
                    row["lost_ids"].append(mid)
                elif n > 1:
                    row["duplicated"] += n - 1
                    row["duplicated_ids"].append(mid)
            row["fetched"] += sum(1 for f in m.get("fetched", []) if f.get("by") == rcpt)
    rows = sorted(per_rcpt.values(), key=lambda r: r["recipient"])
    if not rows:
        return rows, None
    for r in rows:
        r["lost_ids"] = r["lost_ids"][:20]
        r["duplicated_ids"] = r["duplicated_ids"][:20]
    lost = sum(r["lost"] for r in rows)
    dup = sum(r["duplicated"] for r in rows)
    acc = sum(r["accepted"] for r in rows)
    text = f"{acc} accepted, {acc - lost} delivered, {lost} lost, {dup} duplicated over {len(rows)} mailbox(es)"
    if lost or dup:
        return rows, failed(text, accounting=rows)
    return rows, passed(text, accounting=rows)
