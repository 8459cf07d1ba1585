"""Meetings: a CalDAV client and the lab's own small invitation agent, run *inside* a
lab host (``python -m lab.clients_calendar KIND JSON``), like ``lab.clients``.

Radicale has no CalDAV scheduling and nothing packaged processes an iMIP invitation, so:

- ``invite``: the organizer's event is PUT into their calendar (made with MKCALENDAR if
  needed) and mailed to the attendees over submission (587, STARTTLS, AUTH) as
  multipart/alternative with ``text/calendar; method=REQUEST`` (RFC 6047);
- ``agent``: for one user, every new iMIP message in the INBOX (IMAPS) is handled once
  (then flagged ``$iMIPHandled``): a REQUEST naming the user goes into the user's
  calendar with their answer and is answered by a METHOD:REPLY mail to the organizer; a
  REPLY to the user's own meeting updates that attendee's PARTSTAT in the user's event;
- ``calendar``: the events of a calendar, with their attendees' answers.

Certificates are verified against the run's CAs; every call prints one JSON object.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import email.utils
import http.client
import imaplib
import json
import smtplib
import ssl
import sys
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

FLAG = "$iMIPHandled"


def _ctx(p: dict[str, Any]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=p["ca_file"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if p.get("keylog"):
        ctx.keylog_filename = p["keylog"]
    return ctx


class DAV:
    """Just enough CalDAV for a user's own calendars on Radicale."""

    def __init__(self, p: dict[str, Any], login: str, password: str):
        self.p, self.login = p, login
        self.auth = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
        self.conn = http.client.HTTPSConnection(p["server"], p.get("port", 5232), context=_ctx(p), timeout=15)

    def path(self, calendar: str, item: str = "") -> str:
        return f"/{quote(self.login)}/{calendar}/" + (quote(item) if item else "")

    def request(self, method: str, path: str, body: str = "", **headers: str) -> tuple[int, str]:
        hdrs = {"Authorization": self.auth, **{k.replace("_", "-"): v for k, v in headers.items()}}
        self.conn.request(method, path, body=body.encode() if body else None, headers=hdrs)
        r = self.conn.getresponse()
        return r.status, r.read().decode(errors="replace")

    def ensure_calendar(self, calendar: str) -> int:
        status, _ = self.request("PROPFIND", self.path(calendar), Depth="0")
        if status == 207:
            return 200
        body = (
            '<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:set><D:prop><D:displayname>{calendar}</D:displayname></D:prop></D:set></C:mkcalendar>"
        )
        status, text = self.request("MKCALENDAR", self.path(calendar), body, Content_Type="application/xml")
        if status not in (200, 201):
            raise OSError(f"MKCALENDAR {self.path(calendar)}: {status} {text[:200]}")
        return status

    def put(self, calendar: str, uid: str, ics: str) -> int:
        status, text = self.request(
            "PUT", self.path(calendar, f"{uid}.ics"), ics, Content_Type="text/calendar; charset=utf-8"
        )
        if status not in (201, 204):
            raise OSError(f"PUT {uid}.ics: {status} {text[:200]}")
        return status

    def get(self, calendar: str, uid: str) -> str | None:
        status, text = self.request("GET", self.path(calendar, f"{uid}.ics"))
        return text if status == 200 else None


def _event(p: dict[str, Any], method: str | None, partstat: dict[str, str]) -> Any:
    import icalendar

    cal = icalendar.Calendar()
    cal.add("prodid", "-//mail-lab//invitation agent//EN")
    cal.add("version", "2.0")
    if method:
        cal.add("method", method)
    ev = icalendar.Event()
    start = dt.datetime.strptime(p["start"], "%Y-%m-%dT%H:%M").replace(tzinfo=dt.UTC)
    ev.add("uid", p["uid"])
    ev.add("dtstamp", dt.datetime.now(dt.UTC))
    ev.add("dtstart", start)
    ev.add("dtend", start + dt.timedelta(minutes=p["minutes"]))
    ev.add("summary", p["summary"])
    ev.add("sequence", 0)
    ev.add("organizer", f"mailto:{p['organizer']}")
    for a in p["attendees"]:
        ev.add(
            "attendee",
            f"mailto:{a}",
            parameters={"PARTSTAT": partstat.get(a, "NEEDS-ACTION"), "RSVP": "TRUE", "ROLE": "REQ-PARTICIPANT"},
        )
    cal.add_component(ev)
    return cal


def _mail(
    p: dict[str, Any],
    login: str,
    password: str,
    to: list[str],
    subject: str,
    text: str,
    ics: bytes,
    method: str,
    message_id: str,
) -> str:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = login, ", ".join(to), subject
    msg["Message-ID"], msg["Date"] = message_id, email.utils.formatdate()
    msg.set_content(text)
    msg.add_alternative(ics.decode(), subtype="calendar", params={"method": method})
    with smtplib.SMTP(p["mail_server"], 587, timeout=p.get("timeout", 20)) as s:
        s.starttls(context=_ctx(p))
        s.login(login, password)
        s.send_message(msg)
    return message_id


def invite(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "stage": "calendar", "uid": p["uid"]}
    t0 = time.monotonic()
    try:
        dav = DAV(p, p["organizer"], p["password"])
        out["mkcalendar"] = dav.ensure_calendar(p["calendar"])
        own = _event(p, None, {})
        out["put"] = dav.put(p["calendar"], p["uid"], own.to_ical().decode())
        out["stage"] = "mail"
        req = _event(p, "REQUEST", {})
        text = f"{p['organizer']} invites you to: {p['summary']} ({p['start']} UTC, {p['minutes']} min).\n"
        _mail(
            p,
            p["organizer"],
            p["password"],
            p["attendees"],
            f"Invitation: {p['summary']}",
            text,
            req.to_ical(),
            "REQUEST",
            p["message_id"],
        )
        out["ics"] = req.to_ical().decode()
        out["ok"], out["stage"] = True, "done"
    except (OSError, ssl.SSLError, smtplib.SMTPException, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = round(time.monotonic() - t0, 4)
    return out


def _calendar_parts(raw: bytes) -> list[Any]:
    import icalendar

    m = email.message_from_bytes(raw, policy=email.policy.default)
    cals = []
    for part in m.walk():
        if part.get_content_type() == "text/calendar":
            cals.append(icalendar.Calendar.from_ical(part.get_payload(decode=True)))
    return cals


def _addr(v: Any) -> str:
    return str(v).lower().removeprefix("mailto:")


def _handle(p: dict[str, Any], dav: DAV, cal: Any, out: dict[str, Any]) -> dict[str, Any]:
    import icalendar

    me = p["login"].lower()
    method = str(cal.get("method", "")).upper()
    ev = next(iter(cal.walk("VEVENT")), None)
    if ev is None:
        return {"method": method, "action": "ignored: no VEVENT"}
    uid, summary = str(ev.get("uid")), str(ev.get("summary"))
    done: dict[str, Any] = {"method": method, "uid": uid, "summary": summary}
    if method == "REQUEST":
        mine = [a for a in _as_list(ev.get("attendee")) if _addr(a) == me]
        if not mine:
            return {**done, "action": "ignored: not an attendee"}
        mine[0].params["PARTSTAT"] = p["answer"]
        del cal["method"]
        dav.ensure_calendar(p["calendar"])
        dav.put(p["calendar"], uid, cal.to_ical().decode())
        reply = icalendar.Calendar()
        reply.add("prodid", "-//mail-lab//invitation agent//EN")
        reply.add("version", "2.0")
        reply.add("method", "REPLY")
        rev = icalendar.Event()
        for key in ("uid", "dtstart", "dtend", "summary", "organizer", "sequence"):
            if ev.get(key) is not None:
                rev[key] = ev[key]
        rev.add("dtstamp", dt.datetime.now(dt.UTC))
        rev.add("attendee", f"mailto:{p['login']}", parameters={"PARTSTAT": p["answer"]})
        reply.add_component(rev)
        organizer = _addr(ev.get("organizer"))
        mid = p["reply_ids"][len(out["replies"])] if len(out["replies"]) < len(p["reply_ids"]) else None
        mid = mid or email.utils.make_msgid(domain="mail-lab.test")
        _mail(
            p,
            p["login"],
            p["password"],
            [organizer],
            f"{p['answer'].title()}: {summary}",
            f"{p['login']} answered {p['answer']} to {summary}.\n",
            reply.to_ical(),
            "REPLY",
            mid,
        )
        out["replies"].append({"to": organizer, "message_id": mid, "uid": uid})
        return {**done, "action": f"added to {p['calendar']} as {p['answer']}, reply sent to {organizer}"}
    if method == "REPLY":
        text = dav.get(p["calendar"], uid)
        if text is None:
            return {**done, "action": "ignored: no such meeting in my calendar"}
        own = icalendar.Calendar.from_ical(text)
        oev = next(iter(own.walk("VEVENT")))
        answers = {_addr(a): a.params.get("PARTSTAT") for a in _as_list(ev.get("attendee"))}
        for a in _as_list(oev.get("attendee")):
            if _addr(a) in answers:
                a.params["PARTSTAT"] = answers[_addr(a)]
        dav.put(p["calendar"], uid, own.to_ical().decode())
        return {**done, "action": "attendee answers recorded: " + ", ".join(f"{k}={v}" for k, v in answers.items())}
    return {**done, "action": "ignored"}


def _as_list(v: Any) -> list[Any]:
    return [] if v is None else list(v) if isinstance(v, list) else [v]


def agent(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "stage": "imap", "handled": [], "replies": []}
    t0 = time.monotonic()
    try:
        dav = DAV(p, p["login"], p["password"])
        imap = imaplib.IMAP4_SSL(p["mail_server"], 993, ssl_context=_ctx(p), timeout=p.get("timeout", 20))
        imap.login(p["login"], p["password"])
        imap.select("INBOX")
        _typ, data = imap.search(None, "UNKEYWORD", FLAG)
        for num in data[0].split():
            _typ, parts = imap.fetch(num, "(RFC822)")
            raw = next(x[1] for x in parts if isinstance(x, tuple))
            mid = str(email.message_from_bytes(raw).get("Message-ID", "")).strip()
            for cal in _calendar_parts(raw):
                out["stage"] = "calendar"
                out["handled"].append({"message_id": mid, **_handle(p, dav, cal, out)})
            imap.store(num, "+FLAGS", FLAG)
        imap.logout()
        out["ok"], out["stage"] = True, "done"
    except (OSError, ssl.SSLError, smtplib.SMTPException, imaplib.IMAP4.error, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = round(time.monotonic() - t0, 4)
    return out


def calendar(p: dict[str, Any]) -> dict[str, Any]:
    import icalendar

    out: dict[str, Any] = {"ok": False}
    try:
        text = DAV(p, p["login"], p["password"]).get(p["calendar"], p["uid"])
        if text is None:
            out["error"] = f"no event {p['uid']} in {p['login']}'s calendar {p['calendar']}"
        else:
            ev = next(iter(icalendar.Calendar.from_ical(text).walk("VEVENT")))
            out["event"] = {
                "uid": str(ev.get("uid")),
                "summary": str(ev.get("summary")),
                "start": ev.decoded("dtstart").isoformat(),
                "organizer": _addr(ev.get("organizer")),
                "attendees": {_addr(a): str(a.params.get("PARTSTAT", "")) for a in _as_list(ev.get("attendee"))},
            }
            out["ok"] = True
    except (OSError, ssl.SSLError, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


KINDS = {"invite": invite, "agent": agent, "calendar": calendar}


def main(argv: list[str]) -> int:
    result = KINDS[argv[0]](json.loads(argv[1]))
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
