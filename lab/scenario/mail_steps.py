"""Mail actions: submit, fetch, resolve, look into mailboxes, talk raw SMTP, flood, flush, read logs."""

from __future__ import annotations

import json
import time
from typing import Any

from lab.model import scenario as S
from lab.runtime import proc
from lab.scenario.context import Context, Outcome, action, failed, passed
from lab.scenario.maillog import message_log

#: seconds a log step gives a line it looks for to be written (see log_step)
LOG_LAG = 2.0


@action("send")
def send(ctx: Context, s: S.Send) -> Outcome:
    sender = s.sender or s.login
    assert sender is not None
    label = s.message or f"m{len(ctx.messages) + 1}"
    message_id = f"<{label}.{ctx.run_id}@mail-lab.test>"
    payload = {
        "server": s.server,
        "port": s.port,
        "tls": s.tls,
        "login": s.login,
        "password": ctx.password(s.login, s.password) if s.login else None,
        "sender": sender,
        "to": s.to,
        "subject": s.subject,
        "body": s.body,
        "attach": [{"name": a.name, "text": a.text} for a in s.attach],
        "message_id": message_id,
        "ca_file": str(ctx.lab.dep.ca.ca_file) if ctx.lab.dep else "",
        "timeout": s.timeout,
        "helo": ctx.plan.nodes[s.on].fqdn,
        "keylog": str(ctx.keylog) if ctx.keylog else None,
    }
    r = ctx.client(s.on, "send", payload, s.timeout)
    r.pop("password", None)
    if s.reject is not None:
        if r.get("ok"):
            return failed(f"expected the server to refuse with {s.reject.code}, but it accepted the message", **r)
        if r.get("code") != s.reject.code:
            return failed(f"expected {s.reject.code}, got {r.get('error') or r.get('code')} at {r.get('stage')}", **r)
        if s.reject.stage and r.get("stage") != s.reject.stage:
            return failed(
                f"refused with {s.reject.code} at stage {r.get('stage')}, expected stage {s.reject.stage}", **r
            )
        if s.reject.says and s.reject.says.lower() not in str(r.get("error", "")).lower():
            return failed(f"refused with {r.get('error')!r}, which does not say {s.reject.says!r}", **r)
        why = ""
        if r.get("stage") == "auth" and float(r.get("seconds") or 0) >= 1:
            # the time is the server's, on purpose: say so, or it reads as a slow lab
            why = (
                f" after {float(r['seconds']):.1f} s: Dovecot answers a failed login only after its "
                "auth_failure_delay (2 s in the shipped server), which slows password guessing down"
            )
        return passed(f"refused as expected{why}: {r.get('error')}", **r)
    if not r.get("ok"):
        return failed(f"not accepted at {r.get('stage')}: {r.get('error')}", **r)
    ctx.messages[label] = {
        "label": label,
        "message_id": message_id,
        "sender": sender,
        "to": list(s.to),
        "subject": s.subject,
        "body": s.body,
        "queue_id": r.get("queue_id"),
        "sent_at": time.time(),
        "on": s.on,  # the MUA's host, for the mail trace
        "server": s.server,
        "port": s.port,
        "tls": r.get("tls_version"),
    }
    return passed(f"accepted: {r.get('reply')} over {r.get('tls_version') or 'plaintext'}", **r)


def _norm_body(text: str) -> str:
    return text.replace("\r\n", "\n").rstrip("\n")


@action("fetch")
def fetch(ctx: Context, s: S.Fetch) -> Outcome:
    payload = {
        "server": s.server,
        "protocol": s.protocol,
        "port": s.port,
        "login": s.login,
        "password": ctx.password(s.login, s.password),
        "ca_file": str(ctx.lab.dep.ca.ca_file) if ctx.lab.dep else "",
        "timeout": s.timeout,
        "keylog": str(ctx.keylog) if ctx.keylog else None,
        "plaintext": s.plaintext,
    }
    r = ctx.client(s.on, "fetch", payload, s.timeout)
    if s.reject:
        if r.get("ok"):
            return failed("expected the login to be refused, but it succeeded", **r)
        if r.get("stage") not in ("auth", "starttls", "connect"):
            return failed(f"failed at {r.get('stage')}, expected a refused login: {r.get('error')}", **r)
        return passed(f"refused as expected at {r.get('stage')}: {r.get('error')}", **r)
    if not r.get("ok"):
        return failed(f"{s.protocol} failed at {r.get('stage')}: {r.get('error')}", **r)
    msgs = r.get("messages", [])
    if s.count is not None and len(msgs) != s.count:
        return failed(f"expected {s.count} message(s) in the mailbox, found {len(msgs)}", **r)
    if s.message:
        want = ctx.messages.get(s.message)
        if want is None:
            return failed(f"message '{s.message}' was never accepted, nothing to look for", **r)
        found = [m for m in msgs if m["message_id"] == want["message_id"]]
        if not found:
            return failed(
                f"message '{s.message}' {want['message_id']} is not in {s.login}'s mailbox "
                f"({len(msgs)} other message(s))",
                **r,
            )
        if len(found) > 1:
            return failed(f"message '{s.message}' is there {len(found)} times (duplicate delivery)", **r)
        m = found[0]
        if m["subject"] != want["subject"]:
            return failed(f"subject differs: sent {want['subject']!r}, fetched {m['subject']!r}", **r)
        if _norm_body(m["body"]) != _norm_body(want["body"]):
            return failed("body differs from what was sent", sent=want["body"], **r)
        want.setdefault("fetched", []).append(
            {"by": s.login, "protocol": s.protocol, "at": time.time(), "tls": r.get("tls_version")}
        )
    return passed(f"{len(msgs)} message(s) over {r.get('tls_version')} ({r.get('cipher')})", **r)


@action("dns")
def dns(ctx: Context, s: S.Dns) -> Outcome:
    server = s.server
    if server is not None:
        node = ctx.plan.node_by_fqdn(server)
        server = node.ip if node is not None and node.ip else server
    r = ctx.client(s.on, "dns", {"query": s.query, "type": s.type, "server": server}, 10)
    if not r.get("ok"):
        return failed(f"no answer: {r.get('error')}", **r)
    if r.get("rcode") != s.rcode:
        return failed(f"rcode {r.get('rcode')}, expected {s.rcode}", **r)
    if s.validated is not None and bool(r.get("ad")) != s.validated:
        return failed(
            "the answer is " + ("not DNSSEC-validated (no AD bit)" if s.validated else "marked validated (AD)"), **r
        )
    if s.contains is not None and not any(s.contains in a for a in r.get("answers", [])):
        return failed(f"no answer holds {s.contains!r}: {r.get('answers')}", **r)
    if s.expect is not None:
        got = sorted(a.lower().rstrip() for a in r.get("answers", []))
        want = sorted(e.lower().rstrip() for e in s.expect)
        if got != want:
            return failed(f"answers {got}, expected {want}", **r)
    return passed(", ".join(r.get("answers", [])) or r.get("rcode", ""), **r)


@action("expect")
def expect(ctx: Context, s: S.Expect) -> Outcome:
    store = ctx.mailbox_store(s.mailbox)
    msgs = store.maildir_messages(s.mailbox)
    details: dict[str, Any] = {
        "mailbox": s.mailbox,
        "messages": [{"file": m["file"], "message_id": m["message_id"], "subject": m["subject"]} for m in msgs],
    }
    if s.count is not None and len(msgs) != s.count:
        return failed(f"{s.mailbox} holds {len(msgs)} message(s), expected {s.count}", **details)
    pool = msgs
    if s.message:
        want = ctx.messages.get(s.message)
        if want is None:
            return failed(f"message '{s.message}' was never accepted", **details)
        pool = [m for m in msgs if m["message_id"] == want["message_id"]]
        if not pool:
            return failed(f"message '{s.message}' {want['message_id']} is not in {s.mailbox}", **details)
    for name, value in s.headers.items():
        if not any(m["headers"].get(name.lower()) == value for m in pool):
            return failed(f"no message with {name}: {value!r} in {s.mailbox}", **details)
    shown: list[str] = []
    for name, texts in s.header_has.items():
        values = [" ".join(m["headers"].get(name.lower(), "").split()) for m in pool]
        details.setdefault("header_values", {})[name] = values
        if not any(all(t in v for t in texts) for v in values):
            have = "; ".join(v for v in values if v) or "no such header"
            return failed(f"no message whose {name} holds {texts} in {s.mailbox} (it says: {have[:400]})", **details)
        shown += [f"{name}: {', '.join(texts)}"]
    return passed(f"{len(msgs)} message(s) in {s.mailbox}" + (f"; {'; '.join(shown)}" if shown else ""), **details)


@action("smtp")
def smtp(ctx: Context, s: S.Smtp) -> Outcome:
    payload = {
        "server": s.server,
        "port": s.port,
        "starttls": s.starttls,
        "mail_from": s.mail_from,
        "rcpt": s.rcpt,
        "helo": ctx.plan.nodes[s.on].fqdn,
        "ca_file": str(ctx.lab.dep.ca.ca_file) if ctx.lab.dep else "",
        "keylog": str(ctx.keylog) if ctx.keylog else None,
    }
    r = ctx.client(s.on, "smtp", payload, 20)
    if not r.get("ok"):
        return failed(f"the SMTP dialogue broke at {r.get('stage')}: {r.get('error')}", **r)
    ehlo = set(r.get("ehlo_before_tls", []))
    missing = [e for e in s.ehlo_has if e.upper() not in ehlo]
    present = [e for e in s.ehlo_lacks if e.upper() in ehlo]
    if missing or present:
        return failed(
            f"EHLO before TLS shows {sorted(ehlo)}: "
            + (f"missing {missing} " if missing else "")
            + (f"must not show {present}" if present else ""),
            **r,
        )
    codes = {rc: v["code"] for rc, v in r.get("rcpt", {}).items()}
    mail_code = r.get("mail_code", 0)
    if s.expect == "refused":
        accepted = [rc for rc, code in codes.items() if code < 400]
        if mail_code < 400 and accepted:
            return failed(f"OPEN RELAY: accepted {', '.join(accepted)} from {s.mail_from}", **r)
        how = (
            f"MAIL FROM refused ({mail_code})"
            if mail_code >= 400
            else ", ".join(f"{rc} {code}" for rc, code in codes.items())
        )
        return passed(f"refused: {how}", **r)
    refused = [f"{rc} {code}" for rc, code in codes.items() if code >= 400]
    if mail_code >= 400 or refused:
        return failed(f"refused: MAIL {mail_code} " + ", ".join(refused), **r)
    return passed(f"accepted {len(codes)} recipient(s)", **r)


@action("flood")
def flood(ctx: Context, s: S.Flood) -> Outcome:
    payload = {
        "server": s.server,
        "port": s.port,
        "login": s.login,
        "password": ctx.password(s.login, s.password),
        "sender": s.login,
        "to": s.to,
        "count": s.count,
        "connections": s.connections,
        "label": s.message,
        "run_id": ctx.run_id,
        "subject": s.subject,
        "body": s.body,
        "timeout": s.timeout,
        "ca_file": str(ctx.lab.dep.ca.ca_file) if ctx.lab.dep else "",
        "helo": ctx.plan.nodes[s.on].fqdn,
    }
    r = ctx.client(s.on, "flood", payload, s.timeout)
    accepted = r.pop("accepted", [])
    ctx.messages[s.message] = {
        "label": s.message,
        "message_ids": accepted,
        "count": s.count,
        "sender": s.login,
        "to": list(s.to),
        "subject": s.subject,
        "body": s.body,
        "sent_at": time.time(),
        "server": s.server,
        "port": s.port,
    }
    rate = len(accepted) / r["seconds"] if r.get("seconds") else 0
    r.update({"accepted_count": len(accepted), "rate": round(rate, 1)})
    if len(accepted) != s.count:
        return failed(f"{len(accepted)} of {s.count} accepted; {r.get('error_count')} error(s)", **r)
    return passed(
        f"{s.count} accepted in {r['seconds']:.2f} s ({rate:.0f} msg/s over {s.connections} connection(s))", **r
    )


@action("flush")
def flush(ctx: Context, s: S.Flush) -> Outcome:
    r = ctx.lab.node(s.node).run(["postqueue", "-f"])
    if r.returncode:
        return failed(f"postqueue -f: {r.stderr.strip()}")
    return passed("deferred mail scheduled for delivery now")


@action("log")
def log_step(ctx: Context, s: S.Log) -> Outcome:
    # a daemon logs an event just after it happens (Postfix's "status=sent" follows the
    # mailbox file Dovecot wrote): a line that is looked for gets LOG_LAG s to be written
    def wanted() -> list[str] | None:
        lines = message_log(ctx, s.node, s.message)
        return lines if lines and (not s.contains or any(s.contains in line for line in lines)) else None

    lines = proc.wait_until(wanted, LOG_LAG, interval=0.05).value or message_log(ctx, s.node, s.message)
    if not lines:
        return failed(f"{s.node}'s log has no line about message '{s.message}'")
    if s.contains and not any(s.contains in line for line in lines):
        return failed(f"no line about '{s.message}' contains {s.contains!r}", lines=lines[-30:])
    if s.absent:
        hits = [line for line in lines if s.absent in line]
        if hits:
            return failed(f"{len(hits)} line(s) about '{s.message}' contain {s.absent!r}: {hits[0]}", lines=lines[-30:])
    return passed(f"{len(lines)} log line(s) about '{s.message}' as expected", lines=lines[-30:])


@action("bruteforce")
def bruteforce(ctx: Context, s: S.BruteForce) -> Outcome:
    target = ctx.plan.node_by_fqdn(s.server)
    assert target is not None  # validation checked it
    port = {"submission": 587, "imaps": 993, "pop3s": 995}[s.protocol]
    payload = {
        "server": s.server,
        "port": port,
        "protocol": s.protocol,
        "login": s.login,
        "attempts": s.attempts,
        "connect_timeout": 3,
        "run": ctx.run_id,
        "helo": ctx.plan.nodes[s.on].fqdn,
        "ca_file": str(ctx.lab.dep.ca.ca_file) if ctx.lab.dep else "",
    }
    r = ctx.client(s.on, "bruteforce", payload, s.timeout)
    tries = r.get("tries", [])
    outcomes = [t["outcome"] for t in tries]
    answered = outcomes.index("blocked") if "blocked" in outcomes else len(outcomes)
    details: dict[str, Any] = {"tries": tries, "port": port}
    if "accepted" in outcomes:
        return failed(f"guess {outcomes.index('accepted') + 1} was accepted", **details)
    if s.expect == "answered":
        if answered < len(outcomes):
            return failed(f"guess {answered + 1} got no answer: {tries[answered]['reply']}", **details)
        return passed(f"all {len(tries)} guesses were answered (refused): nothing stopped the guessing", **details)
    if answered == len(outcomes):
        return failed(
            f"all {len(tries)} guesses were answered ({tries[-1]['reply'][:60]}): nothing stopped the guessing",
            **details,
        )
    jail = "postfix" if s.protocol == "submission" else "dovecot"
    ban = ban_facts(ctx, target.name, jail)
    details.update(ban)
    ip = ctx.lab.node(s.on).ip
    if ip not in ban.get("banned", []):
        return failed(f"guess {answered + 1} got no answer, but fail2ban's {jail} jail does not hold {ip}", **details)
    return passed(
        f"banned after {answered} refused guess(es): guess {answered + 1} got {tries[answered]['reply'][:60]}; "
        f"fail2ban's {jail} jail holds {ip}; its nftables rule rejected {ban.get('rejected', 0)} packet(s)",
        **details,
    )


def ban_facts(ctx: Context, node: str, jail: str) -> dict[str, Any]:
    """What fail2ban on ``node`` holds banned, and how many packets its nftables rules refused."""
    from lab.services.fail2ban import Fail2ban

    svc = ctx.lab.service(node, Fail2ban)
    if svc is None:
        return {"banned": [], "note": f"{node} runs no fail2ban"}
    r = ctx.lab.node(node).run(["nft", "-j", "list", "table", "inet", "f2b-table"])
    rejected = 0
    try:
        for item in json.loads(r.stdout).get("nftables", []):
            for expr in item.get("rule", {}).get("expr", []):
                rejected += expr.get("counter", {}).get("packets", 0)
    except ValueError:
        pass
    return {"banned": svc.banned(jail), "rejected": rejected, "jail": jail}


@action("scan")
def scan(ctx: Context, s: S.Scan) -> Outcome:
    from lab.model.tlspolicy import Offered, violations

    r = ctx.client(s.on, "scan", {"server": s.server, "ports": s.ports, "timeout": s.timeout - 5}, s.timeout)
    verdicts: dict[str, Any] = {}
    broken: list[str] = []
    for res in r.get("ports", []):
        port = res["port"]
        if res.get("error"):
            verdicts[str(port)] = {"error": res["error"]}
            broken.append(f"{port}: the scan failed: {res['error'][:120]}")
            continue
        found = Offered(res["protocols"], [(c["protocol"], c["cipher"]) for c in res["ciphers"]])
        v = violations(found)
        enabled = [p for p, on in res["protocols"].items() if on]
        verdicts[str(port)] = {
            "verdict": "holds" if not v else "broken",
            "protocols": enabled,
            "ciphers": [f"{c['protocol']} {c['cipher']}" for c in res["ciphers"]],
            "violations": v,
        }
        if v:
            broken.append(f"{port}: {'; '.join(v[:3])}" + (f" (+{len(v) - 3} more)" if len(v) > 3 else ""))
    summary = ", ".join(
        f"{port}: {v.get('verdict', 'error')} ({len(v.get('ciphers', []))} suites, {'/'.join(v.get('protocols', []))})"
        for port, v in verdicts.items()
    )
    details = {"ports": verdicts, "seconds": r.get("seconds")}
    if s.expect == "holds" and broken:
        return failed(f"the {s.policy} policy is broken on " + " | ".join(broken), **details)
    if s.expect == "broken" and not broken:
        return failed(f"expected a weakness, the scanner found none: {summary}", **details)
    return passed(f"sslscan: {summary}", **details)
