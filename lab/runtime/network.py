"""Build the Mininet network of a plan, and tear down exactly what was built."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.errors import BuildError, EnvironmentProblem
from lab.model.plan import Plan
from lab.runtime.impair import netem_available
from lab.runtime.node import LabNode
from lab.runtime.rundir import RunDir

if TYPE_CHECKING:
    from lab.model.nodeplan import Route
    from lab.model.topology import Node

log = logging.getLogger(__name__)

PrivateDirs = list[Any]  # Mininet's privateDirs: (mountpoint, source) tuples or tmpfs strings

#: the metric of a tunnel's kill-switch route: far below (above, in number) the tunnel's own
KILL_METRIC = 4000

#: Folders every node gets empty and private (a tmpfs of its own), so that even a daemon
#: talked into running something cannot read or write the machine's own.  A folder that
#: holds the lab itself (its code, its Python, its state) stays shared: nodes need those.
HIDDEN = ("/tmp", "/root", "/home")


def hidden_dirs() -> list[str]:
    import sys

    from lab.runtime.rundir import STATE_ROOT

    needed = [
        Path(__file__).resolve().parents[2],
        Path(sys.prefix).resolve(),
        Path(sys.executable).resolve(),
        STATE_ROOT.resolve(),
    ]
    return [d for d in HIDDEN if not any(p == Path(d) or Path(d) in p.parents for p in needed)]


def _mininet() -> Any:
    # SETUPTOOLS_USE_DISTUTILS=stdlib is set by lab/__init__.py, before any import of Mininet
    try:
        import mininet.link
        import mininet.log
        import mininet.net
        import mininet.node
        import mininet.nodelib
    except ImportError as exc:  # pragma: no cover - environment
        raise EnvironmentProblem(
            f"cannot import Mininet: {exc}",
            hint="run scripts/setup.sh (Debian's 'mininet' package in a venv with system site packages)",
        ) from None
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
        self.links: dict[int, Any] = {}
        self.down: set[int] = set()  # the links taken down (set_link)

    def build(self, private_dirs: Callable[[str, Path], PrivateDirs]) -> None:
        _mininet()
        from mininet.link import Link, TCLink
        from mininet.net import Mininet

        from lab.runtime.bridge import LabBridge
        from lab.runtime.hosts import UTSHost

        topo = self.plan.topology
        t = topo.data
        prefix = self.run.prefix
        self.net = Mininet(
            topo=None, build=False, controller=None, autoSetMacs=False, autoStaticArp=False, waitConnected=False
        )
        node: Node | LabNode  # topology nodes first, then the built ones
        for i, (name, node) in enumerate(((n, v) for n, v in t.nodes.items() if v.role == "switch"), start=1):
            br = f"{prefix}b{i}"
            self.bridges[name] = br
            self.net.addSwitch(br, cls=LabBridge, dpid=f"{i:016x}", hub=node.hub, stp=node.stp)
        hidden = hidden_dirs()
        for name, node in t.nodes.items():
            if node.role == "switch":
                continue
            ndir = self.run.node_dir(name)
            own = private_dirs(name, ndir)
            bound = {d[0] if isinstance(d, tuple) else d for d in own}
            host = self.net.addHost(
                f"{prefix}-{name}", cls=UTSHost, ip=None, privateDirs=[*own, *(d for d in hidden if d not in bound)]
            )
            self.nodes[name] = LabNode(self.plan.nodes[name], host, ndir, prefix)
        iface_of = {(n.name, i.link): i.name for n in self.plan.nodes.values() for i in n.interfaces}
        mac_of = {(n.name, i.link): i.mac for n in self.plan.nodes.values() for i in n.interfaces}
        ports: dict[str, int] = {}

        bridge_ports: list[str] = []

        def port(br: str) -> str:
            ports[br] = ports.get(br, 0) + 1
            bridge_ports.append(f"{br}-{ports[br]}")
            return bridge_ports[-1]

        netem = netem_available() if any(lk.loss or lk.delay for lk in t.links) else False
        for k, link in enumerate(t.links):
            params: dict[str, Any] = {}
            if link.bw:
                params["bw"] = link.bw
            if netem and link.delay:
                params["delay"] = link.delay
                if link.jitter:
                    params["jitter"] = link.jitter
            if netem and link.loss:
                params["loss"] = link.loss
            cls = TCLink if params else Link
            ends: list[tuple[Any, str, str | None]] = []  # (Mininet node, interface, MAC)
            for end in (link.a, link.b):
                if t.nodes[end].role == "switch":
                    br = self.bridges[end]
                    ends.append((self.net[br], port(br), None))
                else:
                    ends.append((self.nodes[end].mn, iface_of[(end, k)], mac_of[(end, k)]))
            # Mininet creates the pair inside the first end's namespace: put a node first
            if t.nodes[link.a].role == "switch" and t.nodes[link.b].role != "switch":
                ends.reverse()
            (n1, i1, m1), (n2, i2, m2) = ends
            macs = {k2: v for k2, v in (("addr1", m1), ("addr2", m2)) if v}
            mlink = self.net.addLink(n1, n2, intfName1=i1, intfName2=i2, cls=cls, **macs, **params)
            self.links[k] = mlink
        try:
            self.net.build()
            self.net.start()
        except Exception as exc:
            raise BuildError(f"Mininet could not build the network: {exc}") from exc
        for name in bridge_ports:
            _no_segmentation_offload(name)
        for node in self.nodes.values():
            node.mac = node.mn.intf(node.plan.interfaces[0].name).MAC()
            self._configure(node)

    def apply_link_states(self) -> None:
        """Take down the links the topology starts down (``up: false``).  Called once the
        captures listen: tcpdump cannot open an interface that is already down."""
        for k, link in enumerate(self.plan.topology.data.links):
            if not link.up:
                self.set_link(k, up=False)

    def _configure(self, node: LabNode) -> None:
        p = node.plan
        r: Route | subprocess.CompletedProcess[str]
        cmds: list[list[str]] = [["ip", "link", "set", "lo", "up"]]
        for itf in p.interfaces:
            cmds.append(["ip", "link", "set", itf.name, "up"])
            if itf.ip:
                cmds.append(["ip", "addr", "add", f"{itf.ip}/{itf.prefixlen}", "dev", itf.name])
        if p.forwards:
            cmds.append(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            # replies may leave by another interface in rings and meshes
            cmds.append(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"])
            # always answer TTL probes: the kernel rate-limits ICMP errors per destination
            # (1/s after a burst of 6), and the unreachables sent while routing converges
            # would use that up, so a traceroute right after a reroute saw silent hops
            cmds.append(["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"])
            if self.plan.topology.routing.mode == "static":
                for r in p.routes:
                    cmds.append(["ip", "route", "replace", r.to, "via", r.via])
        elif p.ip and p.gateway:
            cmds.append(["ip", "route", "add", "default", "via", p.gateway])
        # a VPN end's TUN device exists from the start (OpenVPN attaches to it), so the
        # run captures inside the tunnel from its first packet; what the node reaches only
        # through a tunnel gets an unreachable route below the tunnel's (kill switch)
        for dev in p.tunnels:
            cmds += [["ip", "tuntap", "add", "dev", dev, "mode", "tun"], ["ip", "link", "set", dev, "up"]]
        cmds += [["ip", "route", "add", "unreachable", net, "metric", str(KILL_METRIC)] for net in p.unreachable]
        for c in cmds:
            r = node.run(c)
            if r.returncode != 0:
                raise BuildError(f"{node.name}: '{' '.join(c)}' failed: {r.stderr.strip()}")
        # checksums computed in software, so captures show valid checksums; packets of the
        # wire's size (no TSO/GSO/GRO super-packets), see _no_segmentation_offload
        for itf in p.interfaces:
            node.run(["ethtool", "-K", itf.name, "tx", "off", "rx", "off", *NO_SEGMENTATION])
        # each host its own resolver: a file in the node dir bind-mounted over /etc/resolv.conf
        resolv = node.dir / "resolv.conf"
        resolv.write_text(resolv_conf(p.search, p.dns_servers) if p.ip else "# filled in by dhclient\n")
        r = node.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"])
        if r.returncode != 0:
            raise BuildError(f"{node.name}: cannot bind-mount its resolv.conf: {r.stderr.strip()}")
        # its own name (UTS namespace) and /etc/hosts, so `hostname`, `hostname -f` and the
        # tools that greet with them (swaks, mutt: EHLO) say who this node is
        hosts = node.dir / "hosts"
        hosts.write_text(hosts_file(p.name, p.fqdn, [i.ip for i in p.interfaces if i.ip]))
        for c in (["mount", "--bind", str(hosts), "/etc/hosts"], ["hostname", p.name]):
            r = node.run(c)
            if r.returncode != 0:
                raise BuildError(f"{node.name}: '{' '.join(c)}' failed: {r.stderr.strip()}")

    def restore_routes(self, node: LabNode) -> None:
        """Reinstall the routes the plan gives a node (the kernel drops them with its links)."""
        p = node.plan
        if p.forwards and self.plan.topology.routing.mode == "static":
            for r in p.routes:
                node.run(["ip", "route", "replace", r.to, "via", r.via])
        elif p.ip and p.gateway:
            node.run(["ip", "route", "replace", "default", "via", p.gateway])
        for net in p.unreachable:
            node.run(["ip", "route", "replace", "unreachable", net, "metric", str(KILL_METRIC)])

    def link_ends(self, k: int) -> list[tuple[Any, str]]:
        """(mininet node, interface name) of both ends of link ``k``."""
        mlink = self.links[k]
        return [(mlink.intf1.node, mlink.intf1.name), (mlink.intf2.node, mlink.intf2.name)]

    def set_link(self, k: int, up: bool) -> None:
        """Take link ``k`` down or up at both ends, as pulling a cable would."""
        state = "up" if up else "down"
        (self.down.discard if up else self.down.add)(k)
        for mn_node, intf in self.link_ends(k):
            mn_node.cmd("ip", "link", "set", intf, state)
        if up:
            for node in self.nodes.values():
                if any(i.link == k for i in node.plan.interfaces):
                    self.restore_routes(node)

    def stop(self) -> list[str]:
        """Kill whatever still runs in the hosts, then stop Mininet.  Returns problems."""
        problems: list[str] = []
        for node in self.nodes.values():
            try:
                left = node.kill_all()
                if left:
                    problems.append(f"{node.name}: pid(s) {left} survived SIGKILL")
            except OSError as exc:  # keep tearing down
                problems.append(f"{node.name}: {exc}")
        if self.net is not None:
            try:
                self.net.stop()
            except Exception as exc:
                problems.append(f"mininet stop: {exc}")
            self.net = None
        return problems

    def capture_points(self) -> list[dict[str, Any]]:
        """One capture point per topology link: its name, subnet and where to listen.

        A link with a switch end is captured on the bridge port in the root namespace
        (exactly that node's traffic); a link between two nodes inside the first one.
        """
        t = self.plan.topology.data
        out = []
        for k, link in enumerate(t.links):
            (n1, i1), (_n2, i2) = self.link_ends(k)
            roles = [t.nodes[link.a].role, t.nodes[link.b].role]
            if "switch" in roles:
                sw = link.a if roles[0] == "switch" else link.b
                subnet = t.nodes[sw].subnet
                iface = (i1 if n1.name == self.bridges.get(sw) else i2) if roles.count("switch") == 1 else i1
                pid = None
            else:
                node = self.nodes[link.a]
                itf = next(i for i in node.plan.interfaces if i.link == k)
                subnet, iface, pid = itf.subnet, itf.name, node.pid
            out.append(
                {
                    "link": f"{link.a}-{link.b}",
                    "index": k,
                    "subnet": subnet,
                    "iface": iface,
                    "netns_pid": pid,
                    "ends": [link.a, link.b],
                }
            )
        for name, node in self.nodes.items():  # inside each tunnel, at each of its ends
            for e in self.plan.tunnel_ends(name):
                out.append(
                    {
                        "link": f"{name}-{e.dev}",
                        "index": None,
                        "subnet": e.vpn,
                        "iface": e.dev,
                        "netns_pid": node.pid,
                        "ends": [name],
                    }
                )
        return out

    def intf_names(self) -> Iterable[str]:
        return list(self.bridges.values())


#: ethtool -K features that make 64 KiB "super-packets" out of a TCP stream
NO_SEGMENTATION = ("tso", "off", "gso", "off", "gro", "off")


def _no_segmentation_offload(iface: str) -> None:
    """Packets of the wire's size on a bridge port (captured here, in the root namespace).

    With segmentation offloads on, a veth carries TCP as super-packets of up to 64 KiB
    and libpcap sizes every frame of tcpdump's ring for one (32 MiB: 512 frames, even
    for a 66-byte ACK): a burst of a browser's page loads while tcpdump waits for a
    core dropped packets on a loaded machine.  Off, a frame is MTU-sized and the same
    ring held 15,000 packets of a burst with tcpdump stopped (measured)."""
    subprocess.run(["ethtool", "-K", iface, *NO_SEGMENTATION], capture_output=True, stdin=subprocess.DEVNULL)


def resolv_conf(search: str, servers: list[str]) -> str:
    lines = [f"search {search}"] + [f"nameserver {s}" for s in servers]
    return "\n".join(lines) + "\n"


def hosts_file(name: str, fqdn: str, addresses: list[str]) -> str:
    lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{fqdn}\t{name}"]
    lines += [f"{a}\t{fqdn}\t{name}" for a in addresses]
    return "\n".join(lines) + "\n"
