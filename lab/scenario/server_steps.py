"""Actions of the thesis's server: Roundcube in a real browser, the certificate (ACME,
forced renewal) and what TLS clients make of it, SSH administration."""

from __future__ import annotations

import shlex
import shutil
import time
from pathlib import Path
from typing import Any

from lab.model import scenario as S
from lab.runtime import proc
from lab.scenario.context import Context, Outcome, action, failed, passed
from lab.services.acme import Certbot
from lab.services.calendar import PORT as CALDAV_PORT
from lab.services.calendar import Radicale
from lab.services.mail import Dovecot, Postfix
from lab.services.ssh import admin_key, known_hosts
from lab.services.webmail import PATH, Apache


def _state(ctx: Context) -> Path:
    assert ctx.lab.run is not None
    return ctx.lab.run.state


def _keep_screenshots(ctx: Context, r: dict[str, Any], name: str) -> list[dict[str, str]]:
    """Copy the browser's screenshots into the report (``screenshots/<name>/``)."""
    dest = ctx.report_dir / "screenshots" / name
    kept = []
    for shot in r.get("screenshots", []):
        src = Path(shot.get("file", ""))
        if src.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / src.name)
            kept.append({"stage": shot["stage"], "file": str((dest / src.name).relative_to(ctx.report_dir))})
    return kept


def _delivered(ctx: Context, rcpt: str, subject: str, timeout: float = 10) -> str | None:
    """The Message-ID of the message with this subject in a lab mailbox, once delivered."""
    try:
        store = ctx.mailbox_store(rcpt)
    except KeyError:
        return None
    found = proc.wait_until(
        lambda: next((m["message_id"] for m in store.maildir_messages(rcpt) if m["subject"] == subject), None),
        timeout,
    )
    return found.value


@action("webmail")
def webmail(ctx: Context, s: S.Webmail) -> Outcome:
    name = f"{len(list((ctx.report_dir / 'screenshots').glob('*'))) + 1:02d}-{s.on}"
    read = ctx.messages.get(s.read) if s.read else None
    if s.read and read is None:
        return failed(f"message '{s.read}' was never sent, nothing to read")
    server = ctx.host_name(s.server)
    payload = {
        "url": f"https://{server}/{PATH}/",
        "base": f"https://{server}/{PATH}/",
        "http_url": f"http://{server}/{PATH}/",
        "login": s.login,
        "password": ctx.password(s.login, s.password),
        "to": s.to,
        "subject": s.subject,
        "body": s.body,
        "read": read["subject"] if read else None,
        "shots": str(_state(ctx) / "web" / name),
        "home": str(_state(ctx) / "web" / f"home-{s.on}"),
        "ca_file": ctx.ca_file,
        "keylog": str(ctx.keylog) if ctx.keylog else None,
        "timeout": min(s.timeout, 30),
    }
    r = ctx.client(s.on, "webmail", payload, s.timeout + 30, module="lab.clients_web")
    r["screenshots"] = _keep_screenshots(ctx, r, name)
    http = r.get("http", {})
    if http.get("status") not in (301, 302, 308) or not str(http.get("location", "")).startswith("https://"):
        return failed(f"plain HTTP did not redirect to HTTPS: {http}", **r)
    if s.expect == "login_refused":
        if r.get("ok") or r.get("stage") != "login":
            return failed(f"expected the login to be refused, got stage {r.get('stage')}: {r.get('error')}", **r)
        return passed(f"login refused, as expected: Roundcube says {r.get('error')!r}", **r)
    if s.expect == "certificate_refused":
        if r.get("stage") != "connect" or "CERT" not in str(r.get("error")):
            return failed(
                f"expected the browser to refuse the certificate, got {r.get('stage')}: {r.get('error')}", **r
            )
        return passed(f"the browser refused the certificate: {r.get('error')}", **r)
    if not r.get("ok"):
        return failed(f"webmail failed at {r.get('stage')}: {r.get('error')}", **r)
    if read is not None and _norm(read["body"]) not in _norm(r.get("read_body", "")):
        return failed(f"message '{s.read}' opened, but its text differs from what was sent", sent=read["body"], **r)
    if s.to:
        label = s.message or f"w{len(ctx.messages) + 1}"
        ids = {rc: _delivered(ctx, rc, s.subject) for rc in s.to}
        missing = [rc for rc, mid in ids.items() if ctx.plan.user(rc) and mid is None]
        if missing:
            return failed(f"sent from Roundcube, but not delivered to {', '.join(missing)} within 10 s", **r)
        mid = next((m for m in ids.values() if m), f"<{label}@unknown>")
        ctx.messages[label] = {
            "label": label,
            "message_id": mid,
            "sender": s.login,
            "to": list(s.to),
            "subject": s.subject,
            "body": s.body,
            "sent_at": time.time(),
            "server": s.server,
            "port": 587,
            "via": "roundcube",
        }
        r["message_id"] = mid
    done = ", ".join(f"{st['stage']} {st['seconds']:.2f} s" for st in r.get("stages", []))
    extra = f"; login to sent {r['login_to_sent']:.2f} s" if r.get("login_to_sent") else ""
    return passed(f"{done}{extra}; {len(r['screenshots'])} screenshot(s)", **r)


def _norm(text: str) -> str:
    return " ".join(text.split())


def _tls_ports(ctx: Context, node: str) -> list[int]:
    lab, ports = ctx.lab, []
    if lab.service(node, Postfix):
        ports.append(587)
    if lab.service(node, Dovecot):
        ports.append(993)
    if lab.service(node, Apache):
        ports.append(443)
    if lab.service(node, Radicale):
        ports.append(CALDAV_PORT)
    return ports


def _keylog(ctx: Context) -> str | None:
    return str(ctx.keylog) if ctx.keylog else None


def _probe(ctx: Context, node: str, server: str, ports: list[int]) -> dict[int, dict[str, Any]]:
    return {
        port: ctx.client(
            node, "tls", {"server": server, "port": port, "ca_file": ctx.ca_file, "keylog": _keylog(ctx)}, 15
        )
        for port in ports
    }


def _serials(probes: dict[int, dict[str, Any]]) -> dict[int, str]:
    return {port: str(r.get("certificate", {}).get("serial")) for port, r in probes.items()}


def _renew(ctx: Context, node: str) -> str:
    """certbot's forced renewal, then every daemon of the node reads the new certificate."""
    certbot = ctx.lab.service(node, Certbot)
    assert certbot is not None
    apache = ctx.lab.service(node, Apache)
    out = certbot.renew(apache.webroot if apache else None)
    for svc in ctx.lab.services:
        if svc.node.name != node:
            continue
        if isinstance(svc, Postfix):
            crt, key = certbot.node.dir / "tls" / "server.crt", certbot.node.dir / "tls" / "server.key"
            svc.install_certificate(crt, key)
        svc.reload()
    return out


@action("certificate")
def certificate(ctx: Context, s: S.Certificate) -> Outcome:
    fqdn = ctx.plan.nodes[s.node].fqdn
    ports = _tls_ports(ctx, s.node)
    before = _probe(ctx, s.node, fqdn, ports)
    details: dict[str, Any] = {"ports": ports, "before": before}
    if s.renew:
        if ctx.lab.service(s.node, Certbot) is None:
            return failed(f"{s.node}'s certificate does not come from ACME: nothing to renew", **details)
        old = _serials(before)
        t0 = time.monotonic()
        details["certbot"] = _renew(ctx, s.node)[-1500:]

        def fresh() -> dict[int, dict[str, Any]] | None:
            now = _probe(ctx, s.node, fqdn, ports)
            return now if all(_serials(now)[p] != old[p] for p in ports) else None

        waited = proc.wait_until(fresh, 15)
        details["renewal_seconds"] = round(time.monotonic() - t0, 2)
        if waited.value is None:
            return failed("after the renewal and reload, a port still serves the old certificate", **details)
        after = waited.value
        details["after"] = after
    else:
        after = before
    refused = {p: r.get("verify_message") or r.get("error") for p, r in after.items() if not r.get("verified")}
    if refused:
        return failed(
            f"clients refuse {fqdn}'s certificate on " + ", ".join(f"{p}: {m}" for p, m in refused.items()), **details
        )
    serials = _serials(after)
    if len(set(serials.values())) != 1:
        return failed(f"the ports serve different certificates: {serials}", **details)
    cert = next(iter(after.values()))["certificate"]
    if s.issuer and s.issuer not in str(cert.get("issuer")):
        return failed(f"issued by {cert.get('issuer')}, expected an issuer with {s.issuer!r}", **details)
    details["certificate"] = cert
    what = "renewed: new serial" if s.renew else "serial"
    return passed(
        f"{fqdn} on {', '.join(map(str, ports))}: {what} {cert.get('serial')}, issuer {cert.get('issuer')}, "
        f"until {cert.get('not_after')}",
        **details,
    )


@action("tls")
def tls(ctx: Context, s: S.Tls) -> Outcome:
    r = ctx.client(
        s.on,
        "tls",
        {"server": ctx.host_name(s.server), "port": s.port, "ca_file": ctx.ca_file, "keylog": _keylog(ctx)},
        15,
    )
    if not r.get("ok"):
        return failed(f"no TLS with {s.server}:{s.port}: {r.get('error')}", **r)
    cert = r.get("certificate", {})
    shown = f"certificate {cert.get('subject')} (names {', '.join(cert.get('san', []))}), issuer {cert.get('issuer')}, until {cert.get('not_after')}"
    if r["reason"] != s.expect:
        why = r.get("verify_message") or "it verified"
        return failed(f"expected {s.expect}, the client says {r['reason']} ({why}); {shown}", **r)
    if s.expect == "trusted":
        return passed(f"trusted: {shown}", **r)
    return passed(f"refused ({s.expect}): {r.get('verify_message')}; {shown}", **r)


def _ssh_argv(ctx: Context, s: S.Ssh) -> list[str]:
    state = _state(ctx)
    argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts(state)}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=1",
    ]
    if s.auth == "key":
        argv += ["-i", str(admin_key(state, s.user)), "-o", "IdentitiesOnly=yes", "-o", "PubkeyAuthentication=yes"]
    else:
        argv += ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"]
    # the remote side gives the command to a shell: each argument is plain (validated) and quoted
    return [*argv, f"{s.user}@{s.to}", "--", *map(shlex.quote, s.command)]


def _ssh_result(rc: int, err: str) -> str:
    if rc == 0:
        return "ok"
    if "Permission denied" in err:
        return "refused"
    if "timed out" in err or "No route to host" in err:
        return "blocked"
    if "Connection refused" in err:
        return "closed"
    if "Host key verification failed" in err:
        return "host-key"
    return "error"


@action("ssh")
def ssh(ctx: Context, s: S.Ssh) -> Outcome:
    t0 = time.monotonic()
    r = ctx.lab.node(s.on).run(_ssh_argv(ctx, s), timeout=s.timeout + 5)
    err = r.stderr.strip()
    got = _ssh_result(r.returncode, err)
    details = {
        "result": got,
        "exit": r.returncode,
        "output": r.stdout[-4000:],
        "stderr": err[-1500:],
        "seconds": round(time.monotonic() - t0, 3),
        "auth": s.auth,
    }
    if got != s.expect:
        return failed(f"expected {s.expect}, got {got}: {err.splitlines()[-1] if err else r.stdout[-200:]}", **details)
    if s.expect == "ok":
        if s.contains and s.contains not in r.stdout:
            return failed(f"the output of {' '.join(s.command)!r} lacks {s.contains!r}", **details)
        return passed(f"ran as {s.user} in {details['seconds']:.2f} s: {r.stdout.strip().splitlines()[-1:]}", **details)
    if s.expect == "refused":
        return passed(f"refused: {err.splitlines()[-1]}", **details)
    return passed(f"blocked: {err.splitlines()[-1] if err else 'no answer'}", **details)
