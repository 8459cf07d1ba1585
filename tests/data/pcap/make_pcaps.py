"""Regenerate the pcaps under tests/data/pcap/star/ from a real lab (needs root).

    sudo .venv/bin/python tests/data/pcap/make_pcaps.py [OUTDIR]

Builds the default star lab (prefix ``mlc``), starts one tcpdump per link as soon as
the network exists (so DHCP's DORA is on the wire), runs the default scenario with the
clients writing a TLS key log, then a few extra exchanges the unit tests need:

- IMAP STARTTLS (143) and POP3 STLS (110) fetches, SMTPS (465) submission;
- one TLS 1.2 IMAPS session (certificate in clear, no key log needed);
- deliberately unsafe plaintext logins: IMAP ``LOGIN`` on 143, POP3 ``USER``/``PASS`` on
  110, SMTP ``AUTH PLAIN`` on 25 and ``AUTH LOGIN`` on 587 before STARTTLS.  The
  servers refuse them, but the credentials have crossed the wire: the analyser must
  find them.

Writes ``<link>.pcap``, ``keylog.txt`` (the clients' TLS secrets, SSLKEYLOGFILE format)
and ``facts.json`` (what the clients and tcpdump reported: the truth the tests compare
the analysis with).  The lab is always torn down.
"""
from __future__ import annotations

import base64
import json
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from lab.capture.capture import specs_for_lab, start_captures  # noqa: E402
from lab.model.scenario import load_scenario  # noqa: E402
from lab.deploy.lab import Lab  # noqa: E402
from lab.runtime.node import netns  # noqa: E402
from lab.scenario.steps import ACTIONS, Context  # noqa: E402


class KeylogContext(Context):
    """The scenario context, with every TLS client writing its secrets to one key log."""

    keylog: Path

    def client(self, node: str, kind: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        if kind in ("send", "fetch"):
            payload = {**payload, "keylog": str(self.keylog)}
        return super().client(node, kind, payload, timeout)


def converse(pid: int, ip: str, port: int, lines: list[bytes], *, banner: bool = True) -> list[str]:
    """Plain TCP from inside a node: read the banner, send each line, read one reply each."""
    with netns(pid):
        sock = socket.socket()
    sock.settimeout(5)
    out = []
    try:
        sock.connect((ip, port))
        f = sock.makefile("rb")
        if banner:
            out.append(_reply(f))
        for line in lines:
            sock.sendall(line + b"\r\n")
            out.append(_reply(f))
    finally:
        sock.close()
    return out


def _reply(f: Any) -> str:
    """One server reply: SMTP multi-line replies ("250-...") are read to their last line."""
    lines = []
    while True:
        raw = f.readline()
        if not raw:
            break
        line = raw.decode(errors="replace").rstrip("\r\n")
        lines.append(line)
        if not (len(line) > 3 and line[:3].isdigit() and line[3] == "-"):
            break
    return "\n".join(lines)


def tls12_imaps(pid: int, ip: str, ca_file: str, sni: str) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with netns(pid):
        raw = socket.socket()
    raw.settimeout(5)
    raw.connect((ip, 993))
    with ctx.wrap_socket(raw, server_hostname=sni) as s:
        f = s.makefile("rb")
        greeting = f.readline().decode().strip()
        s.sendall(b"t1 LOGOUT\r\n")
        f.readline()
        cert = s.getpeercert() or {}
        return {"tls_version": s.version(), "cipher": s.cipher()[0], "greeting": greeting,
                "peer_subject": dict(x[0] for x in cert.get("subject", ())).get("commonName"),
                "peer_san": [v for _, v in cert.get("subjectAltName", ())]}


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for old in outdir.glob("*.pcap"):
        old.unlink()
    keylog = outdir / "keylog.txt"
    keylog.write_text("")
    scn = load_scenario(REPO / "scenarios" / "star.yaml")
    holder: dict[str, Any] = {}

    def progress(msg: str) -> None:
        print(msg, flush=True)
        # the first message after the network exists: start the captures before any
        # daemon (and before dhclient) so DHCP and the services' start are recorded
        if "caps" not in holder and lab.network is not None and lab.network.net is not None:
            holder["specs"] = specs_for_lab(lab)
            holder["caps"] = start_captures(holder["specs"], outdir)
            print("captures listening on", [(s.link, s.iface) for s in holder["specs"]], flush=True)

    lab = Lab(scn.plan, prefix="mlc", progress=progress)
    facts: dict[str, Any] = {"steps": [], "extra": {}}
    try:
        lab.up()
        ctx = KeylogContext(lab, lab.run_id, outdir)
        ctx.keylog = keylog
        for step in scn.steps:
            out = ACTIONS[step.kind](ctx, step.params)
            print(f"step {step.index} {step.kind}: {out.status} {out.message}", flush=True)
            d = {k: v for k, v in out.details.items() if k not in ("messages", "traceback")}
            facts["steps"].append({"index": step.index, "kind": step.kind, "status": out.status,
                                   "message": out.message, "details": d})
        ca = str(lab.dep.ca.ca_file) if lab.dep else ""
        extra = facts["extra"]
        pw = {"alice@projet.dz": "alice-secret", "bob@projet.dz": "bob-secret"}
        for name, node, proto, login in (("imap_starttls", "pc2", "imap", "bob@projet.dz"),
                                          ("pop3_stls", "pc1", "pop3", "alice@projet.dz")):
            r = ctx.client(node, "fetch", {"server": "mail.projet.dz", "protocol": proto, "port": None,
                                           "login": login, "password": pw[login], "ca_file": ca,
                                           "timeout": 10}, 10)
            r.pop("messages", None)
            extra[name] = r
        r = ctx.client("pc1", "send", {"server": "mail.projet.dz", "port": 465, "tls": "implicit",
                                       "login": "alice@projet.dz", "password": pw["alice@projet.dz"],
                                       "sender": "alice@projet.dz", "to": ["bob@projet.dz"],
                                       "subject": "over SMTPS", "body": "implicit TLS on 465\n",
                                       "message_id": f"<smtps.{lab.run_id}@mail-lab.test>", "ca_file": ca,
                                       "timeout": 10, "helo": "pc1.projet.dz"}, 10)
        extra["smtps_465"] = r
        mail_ip = lab.node("mail").ip
        assert mail_ip
        pc1, pc2 = lab.node("pc1"), lab.node("pc2")
        extra["tls12_imaps"] = tls12_imaps(pc1.pid, mail_ip, ca, "mail.projet.dz")
        plain = base64.b64encode(b"\0alice@projet.dz\0alice-secret")
        extra["plain_imap_login"] = {"node": "pc2", "client": pc2.ip, "replies": converse(
            pc2.pid, mail_ip, 143, [b"a1 LOGIN bob@projet.dz bob-secret", b"a2 LOGOUT"])}
        extra["plain_pop3_user_pass"] = {"node": "pc2", "client": pc2.ip, "replies": converse(
            pc2.pid, mail_ip, 110, [b"USER bob@projet.dz", b"PASS bob-secret", b"QUIT"])}
        extra["plain_smtp_auth_plain_25"] = {"node": "pc1", "client": pc1.ip, "replies": converse(
            pc1.pid, mail_ip, 25, [b"EHLO pc1.projet.dz", b"AUTH PLAIN " + plain, b"QUIT"])}
        extra["plain_smtp_auth_login_587"] = {"node": "pc1", "client": pc1.ip, "replies": converse(
            pc1.pid, mail_ip, 587, [b"EHLO pc1.projet.dz", b"AUTH LOGIN",
                                    base64.b64encode(b"alice@projet.dz"), base64.b64encode(b"alice-secret"),
                                    b"QUIT"])}
        facts["nodes"] = {n: {"ip": node.ip, "mac": node.mac} for n, node in lab.nodes.items()}
        facts["leases"] = {n: c.lease() for n, c in lab.dhclients.items()}
        for n, c in lab.dhclients.items():
            facts["nodes"][n]["ip"] = c.address()
    finally:
        caps = holder.get("caps")
        if caps is not None:
            facts["captures"] = [s.to_dict() for s in caps.stop()]
            facts["specs"] = [{"link": s.link, "iface": s.iface, "netns_pid": s.netns_pid}
                              for s in holder["specs"]]
        lab.down()
    (outdir / "facts.json").write_text(json.dumps(facts, indent=2, default=str) + "\n")
    for p in sorted(outdir.glob("*.pcap")):
        print(f"{p.name}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "star")
