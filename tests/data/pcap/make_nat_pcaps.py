"""Regenerate tests/data/pcap/nat/: a client behind a NAT router, captured on both sides (root).

    sudo .venv/bin/python tests/data/pcap/make_nat_pcaps.py [OUTDIR]

The lab's topologies have no router yet, so this builds the smallest one by hand with
``ip netns`` (every name starts with ``mlcn``) and removes it afterwards::

    client 192.168.50.2 --[link c-r]-- router (nft masquerade to :20000-20099) --[link r-s]-- server 203.0.113.10

Both links are captured *inside* a namespace (``LinkCapture`` with ``netns_pid``): the
``c-r`` link in the client, ``r-s`` in the server.  Traffic: two TCP sessions to a tiny
IMAP-like server on 143 (one sends ``a1 LOGIN`` in clear), two UDP datagrams to an echo
server on 5000, and two pings.  Writes ``c-r.pcap``, ``r-s.pcap`` and ``facts.json``.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from lab.capture.capture import start_captures  # noqa: E402
from lab.runtime.node import netns  # noqa: E402

NS = {"c": "mlcn-c", "r": "mlcn-r", "s": "mlcn-s"}
SERVER = r"""
import socket, sys, threading
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 143)); t.listen()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5000))
def udp():
    while True:
        data, peer = u.recvfrom(2048); u.sendto(b"echo " + data, peer)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
while True:
    c, _ = t.accept(); f = c.makefile("rb")
    c.sendall(b"* OK fake IMAP ready\r\n")
    for line in f:
        tag = line.split(b" ", 1)[0]
        if b" LOGOUT" in line.upper():
            c.sendall(b"* BYE\r\n" + tag + b" OK LOGOUT done\r\n"); break
        c.sendall(tag + b" NO not a real server\r\n")
    c.close()
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


def build() -> None:
    for ns in NS.values():
        sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", "mlcn1a", "type", "veth", "peer", "name", "mlcn1b")
    sh("ip", "link", "add", "mlcn2a", "type", "veth", "peer", "name", "mlcn2b")
    for dev, ns, name in (("mlcn1a", NS["c"], "eth0"), ("mlcn1b", NS["r"], "in0"),
                          ("mlcn2a", NS["r"], "out0"), ("mlcn2b", NS["s"], "eth0")):
        sh("ip", "link", "set", dev, "netns", ns)
        sh("ip", "-n", ns, "link", "set", dev, "name", name)
        sh("ip", "-n", ns, "link", "set", name, "up")
        sh("ip", "netns", "exec", ns, "ethtool", "-K", name, "tx", "off", "rx", "off")
    for ns in NS.values():
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", NS["c"], "addr", "add", "192.168.50.2/24", "dev", "eth0")
    sh("ip", "-n", NS["c"], "route", "add", "default", "via", "192.168.50.1")
    sh("ip", "-n", NS["r"], "addr", "add", "192.168.50.1/24", "dev", "in0")
    sh("ip", "-n", NS["r"], "addr", "add", "203.0.113.1/24", "dev", "out0")
    sh("ip", "-n", NS["s"], "addr", "add", "203.0.113.10/24", "dev", "eth0")
    sh("ip", "netns", "exec", NS["r"], "sysctl", "-qw", "net.ipv4.ip_forward=1")
    rules = ("table ip nat {\n  chain post {\n    type nat hook postrouting priority srcnat;\n"
             '    oifname "out0" meta l4proto { tcp, udp } masquerade to :20000-20099\n'
             '    oifname "out0" masquerade\n  }\n}\n')
    subprocess.run(["ip", "netns", "exec", NS["r"], "nft", "-f", "-"], input=rules, check=True, text=True)


def teardown(procs: list[subprocess.Popen[Any]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    for ns in NS.values():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[Any]] = []
    facts: dict[str, Any] = {"client": "192.168.50.2", "router_outside": "203.0.113.1", "server": "203.0.113.10"}
    try:
        build()
        # a process in each end namespace, to attach tcpdump to (mnexec -a PID)
        holders = {k: subprocess.Popen(["ip", "netns", "exec", NS[k], "sleep", "120"]) for k in ("c", "s")}
        procs += holders.values()
        server = subprocess.Popen(["ip", "netns", "exec", NS["s"], "/usr/bin/python3", "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        procs.append(server)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        specs = [{"link": "c-r", "iface": "eth0", "netns_pid": holders["c"].pid},
                 {"link": "r-s", "iface": "eth0", "netns_pid": holders["s"].pid}]
        caps = start_captures(specs, outdir)
        try:
            cpid = holders["c"].pid
            flows = []
            for lines in ([b"a1 LOGIN carol s3cret", b"a2 LOGOUT"], [b"a1 CAPABILITY", b"a2 LOGOUT"]):
                with netns(cpid):
                    s = socket.socket()
                s.settimeout(5)
                s.connect(("203.0.113.10", 143))
                f = s.makefile("rb")
                f.readline()
                for ln in lines:
                    s.sendall(ln + b"\r\n")
                    while True:
                        reply = f.readline()
                        if not reply or reply.startswith(ln.split()[0]):
                            break
                flows.append({"client_port": s.getsockname()[1], "sent": [x.decode() for x in lines]})
                s.close()
            facts["tcp"] = flows
            with netns(cpid):
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.settimeout(5)
            u.connect(("203.0.113.10", 5000))
            for msg in (b"one", b"two"):
                u.send(msg)
                u.recv(100)
            facts["udp"] = {"client_port": u.getsockname()[1]}
            u.close()
            r = subprocess.run(["ip", "netns", "exec", NS["c"], "ping", "-c", "2", "-i", "0.2", "-W", "2",
                                "203.0.113.10"], capture_output=True, text=True)
            facts["ping_ok"] = r.returncode == 0
        finally:
            facts["captures"] = [s.to_dict() for s in caps.stop()]
    finally:
        teardown(procs)
    (outdir / "facts.json").write_text(json.dumps(facts, indent=2) + "\n")
    for p in sorted(outdir.glob("*.pcap")):
        print(f"{p.name}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "nat")
