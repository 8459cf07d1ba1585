"""Follow each message of a run through the daemons' logs, hop by hop.

Starting from the queue id the client was given, the trace reads the copied logs
(``nodes/<node>/logs/postfix.log``, ``dovecot.log``, ``queries.log``): the submission
session (connect, TLS, AUTH), cleanup's message-id, qmgr, then each delivery attempt —
a relay by SMTP (with the MX lookup the sending server made before it, and the next
server's queue id from "queued as NEWID", followed on that node), or LMTP into Dovecot
(with Dovecot's "saved mail" line) — and finally the IMAP/POP3 logins that fetched it.

Hops are plain dicts in causal order, each with the role it plays (``lab.report.mailroles``:
the MUA's submission first, then MSA, MTA, MDA and the MUA fetching).  Logs carry no year
and only whole seconds, so ``ts`` is approximate; ``time`` is the log's own text.  The
flows the captures saw are attached to the hops that made those connections
(``lab.report.mailwire``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from lab.report import mailroles
from lab.report.mailwire import attach_wire, wire_flows

SYSLOG_RE = re.compile(r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<hms>\d\d:\d\d:\d\d(?:\.\d+)?) (?P<rest>.*)$")
POSTFIX_RE = re.compile(r"^(?:(?P<host>\S+) )?(?P<prog>postfix(?:/[\w.-]+)*)\[(?P<pid>\d+)\]: (?P<msg>.*)$")
QID_RE = re.compile(r"^(?P<qid>[0-9A-F]{6,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{12,}): (?P<what>.*)$")
RSPAMD_RE = re.compile(
    r"^(?P<date>\d{4}-\d\d-\d\d) (?P<hms>\d\d:\d\d:\d\d) .*rspamd_task_write_log: id: <(?P<mid>[^>]*)>, "
    r"qid: <(?P<qid>[^>]*)>.*?\(default: (?P<spam>[TF]) \((?P<action>[^)]*)\): \[(?P<score>[-\d.]+)/(?P<limit>[-\d.]+)\] "
    r"\[(?P<symbols>[^\]]*)\]"
)
#: the symbols a verdict is explained by: what the authenticity checks and the filters said
VERDICT_SYMBOLS = {
    "R_DKIM_ALLOW": "DKIM pass",
    "R_DKIM_REJECT": "DKIM fail",
    "DKIM_SIGNED": "DKIM-signed here",
    "R_SPF_ALLOW": "SPF pass",
    "R_SPF_FAIL": "SPF fail",
    "R_SPF_SOFTFAIL": "SPF softfail",
    "DMARC_POLICY_ALLOW": "DMARC pass",
    "DMARC_POLICY_REJECT": "DMARC reject",
    "DMARC_POLICY_QUARANTINE": "DMARC quarantine",
    "GTUBE": "GTUBE test spam",
    "CLAM_VIRUS": "ClamAV: virus",
}
NAMED_RE = re.compile(
    r"^(?P<date>\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d\.\d+) .*?client @\S+ (?P<ip>[\d.]+)#\d+ "
    r"\((?P<name>[^)]*)\): query: (?P<q>\S+) IN (?P<type>\S+)"
)
TLS_RE = re.compile(
    r"TLS connection established (?:from|to) (?P<peer>\S+?): (?P<version>TLSv[\d.]+) with cipher (?P<cipher>\S+)"
)
PEER_RE = re.compile(r"(?P<name>[^\s\[]+)\[(?P<ip>[^\]]+)\](?::(?P<port>\d+))?")
KV_RE = re.compile(r"(\w+)=(<[^>]*>|\([^)]*\)|[^,\s]+)")
MONTHS = {
    m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)
}
SERVICE_PORTS = {"submission": 587, "smtps": 465, "smtpd": 25}
FETCH_PORTS = {("imap", True): 993, ("imap", False): 143, ("pop3", True): 995, ("pop3", False): 110}


@dataclass
class Line:
    node: str
    log: str  # path relative to the report dir
    lineno: int
    text: str
    time: str  # as written in the log
    ts: float | None
    prog: str = ""  # postfix/submission/smtpd, imap-login, lmtp(...)
    pid: str = ""
    msg: str = ""


class Logs:
    """The logs of one report, parsed once."""

    def __init__(self, report_dir: Path, summary: dict[str, Any]):
        self.dir = Path(report_dir)
        self.year, self.tz = _year_tz(summary)
        self.postfix: dict[str, list[Line]] = {}
        self.dovecot: dict[str, list[Line]] = {}
        self.queries: list[tuple[float | None, str, str, str, str, str, int]] = []
        #: (node, queue id) -> rspamd's verdict on that message at that hop
        self.verdicts: dict[tuple[str, str], tuple[Line, str]] = {}
        nodes = self.dir / "nodes"
        for node_dir in sorted(nodes.iterdir()) if nodes.is_dir() else []:
            logs = node_dir / "logs"
            if (logs / "postfix.log").is_file():
                self.postfix[node_dir.name] = self._syslog(node_dir.name, logs / "postfix.log", postfix=True)
            if (logs / "dovecot.log").is_file():
                self.dovecot[node_dir.name] = self._syslog(node_dir.name, logs / "dovecot.log", postfix=False)
            if (logs / "rspamd.log").is_file():
                self._rspamd(node_dir.name, logs / "rspamd.log")
            for qlog in (logs / "queries.log", logs / "named.log"):
                if qlog.is_file():
                    self._named(node_dir.name, qlog)
        # each node's own addresses, from the PTR records the lab served: unlike A records
        # they never hold a public (NATed) copy, only the addresses of real interfaces
        self.addresses: dict[str, set[str]] = {}
        for r in summary.get("dns_records", []):
            zone = str(r.get("zone", ""))
            if r.get("type") == "PTR" and zone.endswith(".in-addr.arpa"):
                labels = (str(r.get("owner")) + "." + zone[: -len(".in-addr.arpa")]).split(".")
                node = str(r.get("value", "")).split(".")[0]
                self.addresses.setdefault(node, set()).add(".".join(reversed(labels)))

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.dir).as_posix()

    def _syslog(self, node: str, path: Path, postfix: bool) -> list[Line]:
        out = []
        for k, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = SYSLOG_RE.match(raw)
            if not m:
                continue
            stamp = m["hms"]
            line = Line(node, self._rel(path), k, raw, stamp, self._ts(m["mon"], m["day"], m["hms"]))
            rest = m["rest"]
            if postfix:
                pm = POSTFIX_RE.match(rest)
                if not pm:
                    continue
                line.prog, line.pid, line.msg = pm["prog"], pm["pid"], pm["msg"]
            else:
                prog, _, msg = rest.partition(": ")
                level, sep, text = msg.partition(": ")
                line.prog, line.msg = (
                    prog,
                    text if sep and level in ("Info", "Warning", "Error", "Fatal", "Panic") else msg,
                )
            out.append(line)
        return out

    def _rspamd(self, node: str, path: Path) -> None:
        for k, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = RSPAMD_RE.match(raw)
            if not m:
                continue
            try:
                ts: float | None = (
                    datetime.strptime(f"{m['date']} {m['hms']}", "%Y-%m-%d %H:%M:%S")
                    .replace(tzinfo=self.tz)
                    .timestamp()
                )
            except ValueError:
                ts = None
            names = [sym.split("(")[0] for sym in m["symbols"].split(",")]
            said = [VERDICT_SYMBOLS[n] for n in names if n in VERDICT_SYMBOLS]
            text = f"rspamd: {m['action']}, score {m['score']}/{m['limit']}" + (f": {', '.join(said)}" if said else "")
            line = Line(node, self._rel(path), k, raw, m["hms"], ts, prog="rspamd")
            self.verdicts[(node, m["qid"])] = (line, text)

    def _named(self, node: str, path: Path) -> None:
        for k, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = NAMED_RE.match(raw)
            if not m:
                continue
            try:
                dt = datetime.strptime(m["date"], "%d-%b-%Y %H:%M:%S.%f").replace(tzinfo=self.tz)
                ts: float | None = dt.timestamp()
            except ValueError:
                ts = None
            self.queries.append(
                (
                    ts,
                    m["date"].split(" ", 1)[1],
                    m["ip"],
                    m["q"].rstrip(".").lower(),
                    m["type"],
                    f"{self._rel(path)}",
                    k,
                )
            )

    def _ts(self, mon: str, day: str, hms: str) -> float | None:
        try:
            h, mi, s = hms.split(":")
            dt = datetime(self.year, MONTHS[mon], int(day), int(h), int(mi), tzinfo=self.tz)
            return (dt + timedelta(seconds=float(s))).timestamp()
        except (KeyError, ValueError):
            return None


def _year_tz(summary: dict[str, Any]) -> tuple[int, timezone]:
    started = str(summary.get("started", ""))
    try:
        dt = datetime.strptime(started, "%Y-%m-%dT%H:%M:%S%z")
        return dt.year, dt.tzinfo if isinstance(dt.tzinfo, timezone) else UTC
    except ValueError:
        run_id = str(summary.get("run_id", ""))
        year = int(run_id[:4]) if run_id[:4].isdigit() else datetime.now().year
        return year, UTC


def _kv(text: str) -> dict[str, str]:
    return {k: v for k, v in KV_RE.findall(text)}


def _peer(text: str) -> dict[str, str]:
    m = PEER_RE.search(text)
    return {"name": m["name"], "ip": m["ip"], "port": m["port"] or ""} if m else {}


def _hop(line: Line, stage: str, text: str, **extra: Any) -> dict[str, Any]:
    hop = {
        "node": line.node,
        "stage": stage,
        "text": text,
        "time": line.time,
        "ts": line.ts,
        "daemon": line.prog.split("(")[0],
        "log": line.log,
        "lineno": line.lineno,
        "line": line.text,
        "status": "ok",
    }
    hop.update({k: v for k, v in extra.items() if v not in (None, "")})
    return hop


class _Tracer:
    def __init__(self, logs: Logs, msg: dict[str, Any]):
        self.logs = logs
        self.msg = msg
        self.mid = str(msg.get("message_id") or "")
        self.hops: list[dict[str, Any]] = []
        self.mailboxes: list[tuple[str, str, float | None]] = []  # (node, user, saved ts)
        self.seen: set[tuple[str, str]] = set()

    def start(self) -> None:
        qid = str(self.msg.get("queue_id") or "")
        node = self._find_queue(qid) if qid else None
        if node is None and self.mid:
            # no queue id (e.g. the client never got one): look for the message-id
            for n, lines in self.logs.postfix.items():
                hit = next((ln for ln in lines if f"message-id={self.mid}" in ln.msg), None)
                if hit:
                    node, qid = n, hit.msg.split(":", 1)[0]
                    break
        if node is None:
            return
        self.queue(node, qid)
        self.fetches()

    def _find_queue(self, qid: str, want_mid: bool = False) -> str | None:
        server = str(self.msg.get("server") or "").split(".")[0]
        candidates = sorted(self.logs.postfix, key=lambda n: n != server)
        for n in candidates:
            for ln in self.logs.postfix[n]:
                if ln.msg.startswith(f"{qid}: client=") or (not want_mid and ln.msg.startswith(f"{qid}: message-id=")):
                    if want_mid and self.mid and not self._has_mid(n, qid):
                        break
                    return n
        return None

    def _has_mid(self, node: str, qid: str) -> bool:
        return any(ln.msg == f"{qid}: message-id={self.mid}" for ln in self.logs.postfix[node])

    def queue(self, node: str, qid: str, via: dict[str, Any] | None = None) -> None:
        if (node, qid) in self.seen:
            return
        self.seen.add((node, qid))
        lines = self.logs.postfix[node]
        mine = [k for k, ln in enumerate(lines) if ln.msg.startswith(f"{qid}: ")]
        self.onward: list[tuple[str, str]] = []
        for k in mine:
            ln = lines[k]
            what = ln.msg.split(": ", 1)[1]
            kv = _kv(what)
            service = ln.prog.split("/")[-2] if ln.prog.count("/") >= 2 else ln.prog.split("/")[-1]
            if what.startswith("client="):
                self._session(node, lines, k, service, kv, via)
                verdict = self.logs.verdicts.get((node, qid))
                if verdict is not None:
                    bad = "reject" in verdict[1].split(",")[0]
                    self.hops.append(
                        _hop(verdict[0], "milter", verdict[1], queue_id=qid, status="failed" if bad else "ok")
                    )
            elif what.startswith("message-id="):
                self.hops.append(_hop(ln, "cleanup", f"message-id {what.split('=', 1)[1]}", queue_id=qid))
            elif what.startswith("from=") and "queue active" in what:
                self.hops.append(
                    _hop(
                        ln,
                        "queued",
                        f"queued from {kv.get('from', '<>')}, {kv.get('size', '?')} bytes, "
                        f"{kv.get('nrcpt', '?')} recipient(s)",
                        queue_id=qid,
                    )
                )
            elif "to=" in what and "status=" in what:
                self._delivery(node, lines, k, qid, kv)
            elif what == "removed":
                self.hops.append(_hop(ln, "removed", "left the queue", queue_id=qid))
            elif what.startswith(("reject:", "milter-reject:")) or "NOQUEUE" in what:
                self.hops.append(_hop(ln, "rejected", what, queue_id=qid, status="failed"))
        # the next servers' share, once this one's is told
        onward, self.onward = self.onward, []
        for nxt, nqid in onward:
            self.queue(nxt, nqid, via={"node": node, "queue_id": qid})

    def _session(
        self, node: str, lines: list[Line], k: int, service: str, kv: dict[str, str], via: dict[str, Any] | None
    ) -> None:
        ln = lines[k]
        qid = ln.msg.split(":", 1)[0]
        client = _peer(kv.get("client", ""))
        tls = None
        connect = None
        for j in range(k - 1, -1, -1):  # the same smtpd process, back to its connect
            prev = lines[j]
            if prev.prog != ln.prog or prev.pid != ln.pid:
                continue
            m = TLS_RE.search(prev.msg)
            if m and tls is None:
                tls = {"version": m["version"], "cipher": m["cipher"]}
            if prev.msg.startswith("connect from"):
                connect = prev
                break
        port = SERVICE_PORTS.get(service, 25)
        server_ips = sorted(self.logs.addresses.get(node, set()))
        extra = {
            "queue_id": qid,
            "service": service,
            "port": port,
            "client": client.get("ip"),
            "client_name": client.get("name"),
            "server": server_ips[0] if server_ips else None,
            "tls": tls,
            "sasl_username": kv.get("sasl_username"),
        }
        if connect is not None:
            self.hops.append(
                _hop(
                    connect,
                    "connect",
                    f"{service} on port {port}: connect from {client.get('name', '?')}[{client.get('ip', '?')}]",
                    service=service,
                    port=port,
                    client=client.get("ip"),
                )
            )
        who = f" as {kv['sasl_username']}" if kv.get("sasl_username") else ""
        stage = "received" if via else "submitted"
        tls_txt = f" over {tls['version']}" if tls else " without TLS"
        self.hops.append(_hop(ln, stage, f"accepted{who}{tls_txt}, queue id {qid}", **extra))

    def _delivery(self, node: str, lines: list[Line], k: int, qid: str, kv: dict[str, str]) -> None:
        ln = lines[k]
        agent = ln.prog.split("/")[-1]
        rcpt = kv.get("to", "").strip("<>")
        relay = kv.get("relay", "")
        status = kv.get("status", "")
        reply = ""
        m = re.search(r"status=\w+ \((.*)\)$", ln.msg)
        if m:
            reply = m.group(1)
        ok = status == "sent"
        st = "ok" if ok else "deferred" if status == "deferred" else "failed"
        if agent == "lmtp" or "dovecot-lmtp" in relay or agent in ("local", "virtual"):
            self.hops.append(
                _hop(
                    ln,
                    "delivery",
                    f"{agent} to {rcpt} via {relay}: {status}" + (f" ({reply})" if reply else ""),
                    queue_id=qid,
                    rcpt=rcpt,
                    status=st,
                )
            )
            if ok:
                self._saved(node, rcpt, reply)
            return
        peer = _peer(relay)
        if agent == "smtp":
            self._mx_lookup(node, rcpt, ln.ts)
        tls = None
        for j in range(k - 1, -1, -1):
            prev = lines[j]
            if prev.prog == ln.prog and prev.pid == ln.pid:
                mt = TLS_RE.search(prev.msg)
                if mt:
                    tls = {"version": mt["version"], "cipher": mt["cipher"]}
                    break
                if prev.msg.startswith(f"{qid}: ") or re.match(r"^[0-9A-F]{6,}: ", prev.msg):
                    break
        src_ips = sorted(self.logs.addresses.get(node, set()))
        tls_txt = f" over {tls['version']}" if tls else ""
        new = re.search(r"queued as (\S+?)\)?$", reply)
        self.hops.append(
            _hop(
                ln,
                "relay",
                f"{agent} to {rcpt} via {relay}{tls_txt}: {status}" + (f" ({reply})" if reply else ""),
                queue_id=qid,
                rcpt=rcpt,
                status=st,
                server=peer.get("ip"),
                server_name=peer.get("name"),
                port=int(peer["port"]) if peer.get("port") else 25,
                client=src_ips[0] if src_ips else None,
                tls=tls,
                next_queue_id=new.group(1) if new else None,
            )
        )
        if ok and new:
            nxt = self._find_queue(new.group(1), want_mid=True)
            if nxt is not None:
                self.onward.append((nxt, new.group(1)))

    def _mx_lookup(self, node: str, rcpt: str, ts: float | None) -> None:
        domain = rcpt.rsplit("@", 1)[-1].lower()
        ips = self.logs.addresses.get(node, set())
        best = None
        for q in self.logs.queries:
            qts, time, ip, name, qtype, log, lineno = q
            if ip in ips and name == domain and qtype == "MX" and (ts is None or qts is None or qts <= ts + 1):
                best = q
        if best is None:
            return
        qts, time, ip, name, qtype, log, lineno = best
        key = ("mx", f"{node}:{domain}")
        if key in self.seen:
            return
        self.seen.add(key)
        server = log.split("/")[1] if log.startswith("nodes/") else ""
        self.hops.append(
            {
                "node": node,
                "stage": "mx",
                "text": f"MX lookup for {domain} from {ip} answered by {server}",
                "time": time,
                "ts": qts,
                "daemon": "named",
                "log": log,
                "lineno": lineno,
                "line": "",
                "status": "ok",
                "dns_server": server,
            }
        )

    def _saved(self, node: str, rcpt: str, reply: str) -> None:
        session = ""
        m = re.search(r"<[^>]+> (\S+) Saved", reply)
        if m:
            session = m.group(1)
        for ln in self.logs.dovecot.get(node, []):
            if not ln.prog.startswith(f"lmtp({rcpt})") or "saved mail to" not in ln.msg:
                continue
            if (session and f"<{session}>" in ln.prog) or (not session and self.mid and f"msgid={self.mid}" in ln.msg):
                box = ln.msg.rsplit("saved mail to ", 1)[-1]
                self.hops.append(_hop(ln, "saved", f"Dovecot saved it for {rcpt} in {box}", rcpt=rcpt))
                self.mailboxes.append((node, rcpt, ln.ts))
                return

    def fetches(self) -> None:
        """IMAP/POP3 logins by each recipient after delivery, with what the session read."""
        wanted = [(f.get("by"), str(f.get("protocol", ""))[:4]) for f in self.msg.get("fetched", []) or []]
        first = len(self.hops)
        for node, user, saved in self.mailboxes:
            lines = self.logs.dovecot.get(node, [])
            for k, ln in enumerate(lines):
                proto = ln.prog.replace("-login", "")
                if not ln.prog.endswith("-login") or not ln.msg.startswith("Login:"):
                    continue
                kv = _kv(ln.msg)
                if kv.get("user", "").strip("<>") != user or (saved and ln.ts and ln.ts < saved - 1):
                    continue
                if wanted and (user, proto) not in wanted:
                    continue
                tls = "TLS" in ln.msg.split(", ")
                session = kv.get("session", "").strip("<>")
                read = next(
                    (
                        x
                        for x in lines[k + 1 :]
                        if x.prog.startswith(f"{proto}({user})")
                        and f"<{session}>" in x.prog
                        and "Disconnected" in x.msg
                    ),
                    None,
                )
                stats = ""
                if read is not None:
                    rk = _kv(read.msg)
                    stats = (
                        f"retr={rk['retr']}"
                        if "retr" in rk
                        else f"body_count={rk['body_count']}"
                        if "body_count" in rk
                        else ""
                    )
                self.hops.append(
                    _hop(
                        ln,
                        "fetch",
                        f"{proto.upper()} login as {user} from {kv.get('rip', '?')}"
                        f"{' over TLS' if tls else ''}" + (f", read {stats}" if stats else ""),
                        rcpt=user,
                        protocol=proto,
                        client=kv.get("rip"),
                        server=kv.get("lip"),
                        port=FETCH_PORTS.get((proto, tls)),
                    )
                )
                break
        # in the order the scenario fetched them
        self.hops[first:] = sorted(
            self.hops[first:],
            key=lambda h: (
                wanted.index((h["rcpt"], h["protocol"])) if (h["rcpt"], h["protocol"]) in wanted else len(wanted)
            ),
        )


def trace(report_dir: Path | str, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per message of ``summary["messages"]``: its label, facts, ordered hops
    (each with its role: MUA, MSA, MTA, MDA) and the chain of those roles."""
    logs = Logs(Path(report_dir), summary)
    flows = wire_flows(summary)
    node_of = {ip: node for node, ips in logs.addresses.items() for ip in ips}
    for lease in summary.get("leases") or []:
        if lease.get("address"):
            node_of.setdefault(str(lease["address"]), str(lease.get("node", "")))
    out = []
    for label, msg in (summary.get("messages") or {}).items():
        t = _Tracer(logs, msg)
        t.start()
        if flows:
            attach_wire(t.hops, flows)
        sent = mailroles.mua_hop(msg, t.hops, summary, node_of)
        hops = ([sent] if sent else []) + t.hops
        mailroles.assign(hops, node_of)
        delivered = sorted({h["rcpt"] for h in hops if h["stage"] == "saved"})
        out.append(
            {
                "label": label,
                "message_id": msg.get("message_id"),
                "queue_id": msg.get("queue_id"),
                "sender": msg.get("sender"),
                "to": list(msg.get("to") or []),
                "subject": msg.get("subject"),
                "delivered": delivered,
                "hops": hops,
                "roles": mailroles.chain(hops),
                "complete": bool(hops) and set(msg.get("to") or []) <= set(delivered),
            }
        )
    return out
