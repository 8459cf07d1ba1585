"""Meeting actions: an invitation by mail (iMIP), the lab's invitation agent, a calendar's
events (Radicale over CalDAV).  The clients run inside hosts (``lab.clients_calendar``)."""

from __future__ import annotations

import time
from typing import Any

from lab.model import scenario as S
from lab.scenario.context import Context, Outcome, action, failed, passed


def _common(ctx: Context, server: str, timeout: float) -> dict[str, Any]:
    return {
        "server": ctx.host_name(server),
        "port": 5232,
        "ca_file": ctx.ca_file,
        "keylog": str(ctx.keylog) if ctx.keylog else None,
        "timeout": timeout,
    }


@action("invite")
def invite(ctx: Context, s: S.Invite) -> Outcome:
    uid = f"{s.message}.{ctx.run_id}@mail-lab.test"
    mid = f"<{s.message}.{ctx.run_id}@mail-lab.test>"
    payload = {
        **_common(ctx, s.server, s.timeout),
        "mail_server": ctx.host_name(s.mail_server),
        "organizer": s.organizer,
        "password": ctx.password(s.organizer, s.password),
        "attendees": s.attendees,
        "calendar": s.calendar,
        "summary": s.summary,
        "start": s.start,
        "minutes": s.minutes,
        "uid": uid,
        "message_id": mid,
    }
    r = ctx.client(s.on, "invite", payload, s.timeout, module="lab.clients_calendar")
    if not r.get("ok"):
        return failed(f"the invitation failed at {r.get('stage')}: {r.get('error')}", **r)
    ctx.messages[s.message] = {
        "label": s.message,
        "message_id": mid,
        "uid": uid,
        "sender": s.organizer,
        "to": list(s.attendees),
        "subject": f"Invitation: {s.summary}",
        "body": "",
        "sent_at": time.time(),
        "server": s.mail_server,
        "port": 587,
        "calendar": s.calendar,
        "organizer": s.organizer,
    }
    return passed(f"{s.summary!r} in {s.organizer}'s calendar {s.calendar}, invitation mailed (METHOD:REQUEST)", **r)


@action("agent")
def agent(ctx: Context, s: S.Agent) -> Outcome:
    label = s.message or f"reply{len(ctx.messages) + 1}"
    payload = {
        **_common(ctx, s.server, s.timeout),
        "mail_server": ctx.host_name(s.mail_server),
        "login": s.login,
        "password": ctx.password(s.login, s.password),
        "calendar": s.calendar,
        "answer": s.answer,
        "reply_ids": [f"<{label}.{ctx.run_id}@mail-lab.test>"]
        + [f"<{label}-{k}.{ctx.run_id}@mail-lab.test>" for k in range(2, 21)],
    }
    r = ctx.client(s.on, "agent", payload, s.timeout, module="lab.clients_calendar")
    if not r.get("ok"):
        return failed(f"the agent failed at {r.get('stage')}: {r.get('error')}", **r)
    handled = r.get("handled", [])
    if s.handled is not None and len(handled) != s.handled:
        return failed(f"handled {len(handled)} iMIP message(s), expected {s.handled}", **r)
    for k, reply in enumerate(r.get("replies", [])):
        ctx.messages[label if k == 0 else f"{label}-{k + 1}"] = {
            "label": label,
            "message_id": reply["message_id"],
            "sender": s.login,
            "to": [reply["to"]],
            "subject": "",
            "body": "",
            "sent_at": time.time(),
            "server": s.mail_server,
            "port": 587,
        }
    what = "; ".join(f"{h.get('method')} {h.get('summary')}: {h.get('action')}" for h in handled) or "nothing new"
    return passed(what, **r)


@action("calendar")
def calendar(ctx: Context, s: S.Calendar) -> Outcome:
    meeting = ctx.messages.get(s.meeting)
    if meeting is None or "uid" not in meeting:
        return failed(f"no invitation has label '{s.meeting}'")
    payload = {
        **_common(ctx, s.server, s.timeout),
        "login": s.login,
        "password": ctx.password(s.login, s.password),
        "calendar": s.calendar,
        "uid": meeting["uid"],
    }
    r = ctx.client(s.on, "calendar", payload, s.timeout, module="lab.clients_calendar")
    if not r.get("ok"):
        return failed(str(r.get("error")), **r)
    got = r["event"]["attendees"]
    wrong = {a: got.get(a.lower()) for a, want in s.partstat.items() if got.get(a.lower()) != want}
    if wrong:
        return failed(
            "attendee answers differ: " + ", ".join(f"{a} is {v}, expected {s.partstat[a]}" for a, v in wrong.items()),
            **r,
        )
    ev = r["event"]
    answers = ", ".join(f"{a} {p}" for a, p in got.items())
    return passed(f"{ev['summary']!r} at {ev['start']} in {s.login}'s {s.calendar}: {answers}", **r)
