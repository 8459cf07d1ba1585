"""The steps of the thesis's server, as validated data: webmail in a browser, the
certificate (ACME) and what TLS clients make of it, SSH administration, and meetings
(a calendar, an iMIP invitation, the invitation agent's answer).

Every value that reaches a command line or a file is one of the ``lab.model.text``
types or matches a pattern here in full; cross-references to the topology are checked
in ``lab.model.scenario_checks``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from lab.model.policy import PortNumber
from lab.model.schema import Strict, hinted
from lab.model.text import Address, Body, Line, Name

#: one argument of a command an administrator runs over SSH: the remote side hands the
#: command to a shell, so only characters no shell gives a meaning to are allowed
SSH_ARG = re.compile(r"[A-Za-z0-9_./:=@%+,-]{1,255}")
CALENDAR_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
WHEN_RE = re.compile(r"20\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d")


def _ssh_arg(v: str) -> str:
    if not SSH_ARG.fullmatch(v):
        raise ValueError(
            hinted(
                f"{v!r} is not a plain command argument",
                "letters, digits and _ . / : = @ % + , - only: the server's shell reads the command",
            )
        )
    return v


def _calendar(v: str) -> str:
    if not CALENDAR_RE.fullmatch(v):
        raise ValueError(hinted(f"'{v}' is not a calendar name", "lower-case letters, digits and '-', e.g. meetings"))
    return v


def _when(v: str) -> str:
    if not WHEN_RE.fullmatch(v):
        raise ValueError(hinted(f"'{v}' is not a date and time", "write it like 2026-12-15T10:00 (UTC)"))
    return v


SshArg = Annotated[str, AfterValidator(_ssh_arg)]
CalendarName = Annotated[str, AfterValidator(_calendar)]
When = Annotated[str, AfterValidator(_when)]
PartStat = Literal["ACCEPTED", "DECLINED", "TENTATIVE", "NEEDS-ACTION"]


class ServerAction(Strict):
    def title(self) -> str:
        return type(self).__name__.lower()


class Webmail(ServerAction):
    """Use Roundcube in a real browser (headless Chromium driven by selenium) from a host:
    log in, optionally compose and send, open a message, log out; a screenshot of each stage."""

    on: Name
    server: Name = Field(description="the webmail's host name (or node)")
    login: Address
    password: Line | None = Field(None, description="default: the user's password from the topology")
    to: list[Address] = Field(default_factory=list, max_length=20, description="compose and send to these")
    subject: Line = "mail-lab webmail message"
    body: Body = "Hello from Roundcube.\n"
    message: Name | None = Field(None, description="a label for the message it sends")
    read: Name | None = Field(None, description="label of a message to open and read in the inbox")
    expect: Literal["ok", "login_refused", "certificate_refused"] = "ok"
    timeout: float = Field(60, gt=0, le=600)

    def title(self) -> str:
        s = self
        what = [f"send to {', '.join(s.to)}" if s.to else "", f"read {s.read}" if s.read else ""]
        return (
            f"{s.on}: webmail {s.login} on {s.server}"
            + "".join(f", {w}" for w in what if w)
            + (f" ({s.expect.replace('_', ' ')})" if s.expect != "ok" else "")
        )


class Certificate(ServerAction):
    """The certificate a node serves on each of its TLS ports; with ``renew``, a forced
    renewal by certbot first, the daemons reloaded, and a new serial on every port."""

    node: Name
    renew: bool = False
    issuer: Line | None = Field(None, description="text the issuer's name must contain, e.g. Pebble")

    def title(self) -> str:
        return f"{self.node}: certificate" + (" renewed by certbot" if self.renew else "")


class Tls(ServerAction):
    """A TLS client connects and verifies like a mail program or a browser: trusted, or
    refused for this reason."""

    on: Name
    server: Name
    port: PortNumber = 443
    expect: Literal["trusted", "expired", "wrong-name", "self-signed", "untrusted"] = "trusted"

    def title(self) -> str:
        return f"{self.on}: TLS to {self.server}:{self.port} ({self.expect})"


class Ssh(ServerAction):
    """Log in as an administrator with the real OpenSSH client (per-run key and
    known_hosts) and run one command; or show that a password, or this host, is refused."""

    on: Name
    to: Name = Field(description="a node, host name or address running ssh")
    user: Name = Field(description="one of the topology's admins")
    command: list[SshArg] = Field(default_factory=lambda: ["true"], min_length=1, max_length=32)
    auth: Literal["key", "password"] = Field("key", description="password: offer only a password (must be refused)")
    expect: Literal["ok", "refused", "blocked"] = "ok"
    contains: Line | None = Field(None, description="text the command's output must contain")
    timeout: float = Field(15, gt=0, le=120)

    def title(self) -> str:
        s = self
        return f"{s.on}: ssh {s.user}@{s.to} {' '.join(s.command)}" + (f" ({s.expect})" if s.expect != "ok" else "")


class Invite(ServerAction):
    """An organizer puts a meeting into their calendar (CalDAV) and mails the invitation
    to the attendees (iMIP: text/calendar, METHOD:REQUEST)."""

    on: Name
    organizer: Address
    password: Line | None = None
    attendees: list[Address] = Field(min_length=1, max_length=20)
    server: Name = Field(description="the CalDAV server's host name")
    mail_server: Name = Field(description="the submission server's host name")
    calendar: CalendarName = "meetings"
    summary: Line
    start: When = Field(description="UTC, e.g. 2026-12-15T10:00")
    minutes: int = Field(60, ge=5, le=1440)
    message: Name = Field(description="label of the invitation (later steps name the meeting by it)")
    timeout: float = Field(30, gt=0, le=300)

    def title(self) -> str:
        s = self
        return f"{s.on}: {s.organizer} invites {', '.join(s.attendees)} to {s.summary!r}"


class Agent(ServerAction):
    """The lab's invitation agent, for one user: reads new iMIP mail over IMAPS; an
    invitation goes into the user's calendar and is answered (METHOD:REPLY); a reply
    updates the attendee's answer in the organizer's event."""

    on: Name
    login: Address
    password: Line | None = None
    server: Name = Field(description="the CalDAV server's host name")
    mail_server: Name = Field(description="the IMAP and submission server's host name")
    calendar: CalendarName = "meetings"
    answer: PartStat = "ACCEPTED"
    message: Name | None = Field(None, description="a label for the reply it sends")
    handled: int | None = Field(None, ge=0, description="exactly this many iMIP messages handled")
    timeout: float = Field(30, gt=0, le=300)

    def title(self) -> str:
        return f"{self.on}: invitation agent for {self.login} ({self.answer.lower()})"


class Calendar(ServerAction):
    """A user's calendar holds the meeting, with each attendee's answer."""

    on: Name
    login: Address
    password: Line | None = None
    server: Name
    calendar: CalendarName = "meetings"
    meeting: Name = Field(description="the invitation's label")
    partstat: dict[Address, PartStat] = Field(default_factory=dict, description="attendee: expected answer")
    timeout: float = Field(20, gt=0, le=300)

    def title(self) -> str:
        return f"{self.on}: {self.login}'s calendar has meeting {self.meeting}"


SERVER_ACTIONS: dict[str, type[ServerAction]] = {
    "webmail": Webmail,
    "certificate": Certificate,
    "tls": Tls,
    "ssh": Ssh,
    "invite": Invite,
    "agent": Agent,
    "calendar": Calendar,
}

__all__ = [
    "SERVER_ACTIONS",
    "Agent",
    "Calendar",
    "Certificate",
    "Invite",
    "ServerAction",
    "Ssh",
    "SshArg",
    "Tls",
    "Webmail",
]
