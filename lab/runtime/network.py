"""Build the Mininet network of a plan, and tear down exactly what was built."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lab.errors import BuildError, EnvironmentProblem
from lab.model.plan import Plan
from lab.runtime.node import LabNode
from lab.runtime.rundir import RunDir

log = logging.getLogger(__name__)

PrivateDirs = list[Any]  # Mininet's privateDirs: (mountpoint, source) tuples or tmpfs strings


def _mininet() -> Any:
    try:
        import mininet.log
        import mininet.net
        import mininet.node
        import mininet.nodelib
        import mininet.link
    except ImportError as exc:  # pragma: no cover - environment
        raise EnvironmentProblem(f"cannot import Mininet: {exc}",
                                 hint="run scripts/setup.sh (Debian's 'mininet' package in a venv with system site packages)")
    mininet.log.setLogLevel("error")
    return mininet


class LabNetwork:
    """The Mininet network of one run.

    Kernel names: bridge ``<prefix>b<N>``, its ports ``<prefix>b<N>-<M>``, hosts'
    shells ``mininet:<prefix>-<node>``; inside a host the interface is ``eth0``.
    """

    def __init__(self, plan: Plan, run: RunDir):
        self.plan = plan
        self.run = run
        self.net: Any = None
        self.nodes: dict[str, LabNode] = {}
        self.bridges: dict[str, str] = {}

    def build(self, private_dirs: Callable[[str, Path], PrivateDirs]) -> None:
        mn = _mininet()
        from mininet.net import Mininet
        from mininet.nodelib import LinuxBridge
        from mininet.node import Host
        from mininet.link import Link, TCLink

        t = self.plan.topology.data
        prefix = self.run.prefix
        self.net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False,
                           autoStaticArp=False, waitConnected=False)
        for i, (name, node) in enumerate(((n, v) for n, v in t.nodes.items() if v.role == "switch"), start=1):
            br = f"{prefix}b{i}"
            self.bridges[name] = br
            self.net.addSwitch(br, cls=LinuxBridge, dpid=f"{i:016x}")
        for name, node in t.nodes.items():
            if node.role == "switch":
                continue
            ndir = self.run.node_dir(name)
            host = self.net.addHost(f"{prefix}-{name}", cls=Host, ip=None,
                                    privateDirs=private_dirs(name, ndir))
            self.nodes[name] = LabNode(self.plan.nodes[name], host, ndir, prefix)
        ports: dict[str, int] = {}
        for link in t.links:
            a, b = link.a, link.b
            if t.nodes[a].role == "switch" and t.nodes[b].role != "switch":
                a, b = b, a
            params: dict[str, Any] = {}
            cls = Link
            if link.bw:
                cls, params = TCLink, {"bw": link.bw}
            if t.nodes[a].role == "switch":  # switch to switch
                ba, bb = self.bridges[a], self.bridges[b]
                ports[ba] = ports.get(ba, 0) + 1
                ports[bb] = ports.get(bb, 0) + 1
                self.net.addLink(self.net[ba], self.net[bb], intfName1=f"{ba}-{ports[ba]}",
                                 intfName2=f"{bb}-{ports[bb]}", cls=cls, **params)
            else:
                br = self.bridges[b]
                ports[br] = ports.get(br, 0) + 1
                self.net.addLink(self.nodes[a].mn, self.net[br], intfName1="eth0",
                                 intfName2=f"{br}-{ports[br]}", cls=cls, **params)
        try:
            self.net.build()
            self.net.start()
        except Exception as exc:
            raise BuildError(f"Mininet could not build the network: {exc}") from exc
        for node in self.nodes.values():
            node.mac = node.mn.intf("eth0").MAC()
            self._configure(node)

    def _configure(self, node: LabNode) -> None:
        p = node.plan
        cmds: list[list[str]] = [["ip", "link", "set", "lo", "up"], ["ip", "link", "set", "eth0", "up"]]
        # checksums computed in software, so captures show valid checksums
        cmds.append(["ethtool", "-K", "eth0", "tx", "off", "rx", "off"])
        if p.ip:
            cmds.append(["ip", "addr", "add", f"{p.ip}/{p.prefixlen}", "dev", "eth0"])
            if p.gateway:
                cmds.append(["ip", "route", "add", "default", "via", p.gateway])
        for c in cmds:
            r = node.run(c)
            if r.returncode != 0 and c[0] != "ethtool":
                raise BuildError(f"{node.name}: '{' '.join(c)}' failed: {r.stderr.strip()}")
        # each host its own resolver: a file in the node dir bind-mounted over /etc/resolv.conf
        resolv = node.dir / "resolv.conf"
        resolv.write_text(resolv_conf(p.search, p.dns_servers) if p.ip else "# filled in by dhclient\n")
        r = node.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"])
        if r.returncode != 0:
            raise BuildError(f"{node.name}: cannot bind-mount its resolv.conf: {r.stderr.strip()}")

    def stop(self) -> list[str]:
        """Kill whatever still runs in the hosts, then stop Mininet.  Returns problems."""
        problems: list[str] = []
        for node in self.nodes.values():
            try:
                left = node.kill_all()
                if left:
                    log.debug("%s: killed leftover pids %s", node.name, left)
            except Exception as exc:  # keep tearing down
                problems.append(f"{node.name}: {exc}")
        if self.net is not None:
            try:
                self.net.stop()
            except Exception as exc:
                problems.append(f"mininet stop: {exc}")
            self.net = None
        return problems

    def intf_names(self) -> Iterable[str]:
        return list(self.bridges.values())


def resolv_conf(search: str, servers: list[str]) -> str:
    lines = [f"search {search}"] + [f"nameserver {s}" for s in servers]
    return "\n".join(lines) + "\n"
