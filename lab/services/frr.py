"""FRRouting on a router node: zebra plus one routing daemon (ospfd or ripd).

Each router runs its own FRR instance with every path moved into ``<node dir>/frr``:
per-daemon config files, pid files, log files, the vty sockets (``--vty_socket``) and
zebra's API socket (``-z``).  Nothing touches ``/etc/frr`` or ``/var/run/frr``, so
any number of routers (and labs) can run side by side, and ``vtysh --vty_socket`` talks
to exactly one router.

The caller sets ``routing`` before ``render()``; a plain dict keeps this class free of
the plan's internals::

    {"mode": "ospf" | "rip", "router_id": "10.255.0.1",
     "interfaces": [{"name": "eth0", "address": "10.0.1.1", "prefixlen": 24, "passive": True}, ...],
     "hello": 1, "dead": 4}

``passive`` marks a LAN with hosts only: its prefix is advertised but no adjacency is
formed there.  Non-passive interfaces are router-to-router links; OSPF runs them as
point-to-point (no DR election, so adjacencies come up within a hello or two).
Optional keys: ``area`` (OSPF, default 0), ``spf`` (OSPF SPF throttle in ms,
``[delay, hold, max_hold]``, default ``[0, 50, 1000]``), ``rip_timers`` (``[update,
timeout, garbage]`` in seconds, default ``[5, 15, 10]``: 5 is the least ripd accepts).

Readiness means every daemon answers on its vty, not that routing has converged:
use ``converged()`` (or ``routes()``/``ospf_neighbors()``) from scenario steps for that.
"""
from __future__ import annotations

import ipaddress
import json
import pwd
import re
import shutil
import time
from pathlib import Path
from typing import Any

from lab.services.base import TEMPLATES, Service, command_version, read_pid, render_template, stop_pid

FRR_BIN = Path("/usr/lib/frr")
VTYSH = "vtysh"
USER = GROUP = "frr"
ROUTING_DAEMON = {"ospf": "ospfd", "rip": "ripd"}
DEFAULT_SPF = (0, 50, 1000)          # ms: first SPF at once, then hold 50 ms growing to 1 s
DEFAULT_LSA = (100, 50)              # ms: least interval between own LSAs (default 5000), least arrival interval (default 1000)
DEFAULT_RIP_TIMERS = (5, 15, 10)     # s: update, timeout, garbage; ripd refuses anything below 5
SOCKET_PATH_MAX = 107                # sun_path is 108 bytes including the NUL
# A daemon's dry run (-C) exits 0 even when config lines fail: read its messages instead.
DRYRUN_ERROR = re.compile(r"on config line \d+|can't open|Unknown command|Ambiguous command|"
                          r"Command incomplete|Config Failed")


class Frr(Service):
    daemon = "frr"
    routing: dict[str, Any] | None = None

    # -- paths ---------------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.node.dir / "frr"

    @property
    def daemons(self) -> list[str]:
        """Start order: zebra first (the routing daemon connects to its API socket)."""
        return ["zebra", ROUTING_DAEMON[self._routing()["mode"]]]

    @property
    def zserv(self) -> Path:
        return self.home / "zserv.api"

    def conf(self, daemon: str) -> Path:
        return self.home / f"{daemon}.conf"

    def pidfile(self, daemon: str) -> Path:
        return self.home / f"{daemon}.pid"

    def logfile(self, daemon: str) -> Path:
        return self.home / f"{daemon}.log"

    def _known_daemons(self) -> list[str]:
        """The daemons of this mode, or every candidate when the mode is unknown (never raises)."""
        mode = (self.routing or {}).get("mode")
        return ["zebra", ROUTING_DAEMON[mode]] if mode in ROUTING_DAEMON else ["zebra", *ROUTING_DAEMON.values()]

    def _routing(self) -> dict[str, Any]:
        r = self.routing
        if not r:
            raise self.fail("no routing settings: set Frr.routing before render()")
        if r.get("mode") not in ROUTING_DAEMON:
            raise self.fail(f"unknown routing mode {r.get('mode')!r}", hint="use 'ospf' or 'rip'")
        return r

    def _argv(self, daemon: str) -> list[str]:
        return [str(FRR_BIN / daemon), "-f", str(self.conf(daemon)), "-i", str(self.pidfile(daemon)),
                "-z", str(self.zserv), "--vty_socket", str(self.home), "-P", "0",
                "-u", USER, "-g", GROUP]

    # -- phases ----------------------------------------------------------------------
    def render(self) -> None:
        r = self._routing()
        home = self.home
        home.mkdir(parents=True, exist_ok=True)
        longest = max((home / f"{d}.vty" for d in [*self.daemons, "zserv.api"]), key=lambda p: len(str(p)))
        if len(str(longest).encode()) > SOCKET_PATH_MAX:
            raise self.fail(f"socket path too long for a unix socket: {longest}",
                            hint="use a shorter state directory (MAIL_LAB_STATE)")
        interfaces = []
        for i in r["interfaces"]:
            net = ipaddress.ip_interface(f"{i['address']}/{i['prefixlen']}").network
            interfaces.append({"name": i["name"], "network": str(net), "passive": bool(i.get("passive")),
                               "description": f"{'lan' if i.get('passive') else 'link'} {net}"})
        common = {"hostname": self.node.name, "interfaces": interfaces}
        self.write(self.conf("zebra"), render_template(TEMPLATES, "frr-zebra.conf.j2", **common,
                                                       log_file=str(self.logfile("zebra"))), mode=0o640)
        if r["mode"] == "ospf":
            delay, hold, max_hold = r.get("spf", DEFAULT_SPF)
            lsa_interval, lsa_arrival = r.get("lsa", DEFAULT_LSA)
            self.write(self.conf("ospfd"), render_template(
                TEMPLATES, "frr-ospfd.conf.j2", **common, log_file=str(self.logfile("ospfd")),
                router_id=r["router_id"], area=r.get("area", 0), hello=r.get("hello", 1), dead=r.get("dead", 4),
                retransmit=r.get("retransmit", 1), spf_delay=delay, spf_hold=hold, spf_max_hold=max_hold,
                lsa_interval=lsa_interval, lsa_arrival=lsa_arrival), mode=0o640)
        else:
            update, timeout, garbage = r.get("rip_timers", DEFAULT_RIP_TIMERS)
            self.write(self.conf("ripd"), render_template(
                TEMPLATES, "frr-ripd.conf.j2", **common, log_file=str(self.logfile("ripd")),
                update=update, timeout=timeout, garbage=garbage), mode=0o640)
        # The daemons drop to frr:frr before they open their logs, pid files and sockets.
        frr = pwd.getpwnam(USER)
        for p in [home, *home.iterdir()]:
            shutil.chown(p, frr.pw_uid, frr.pw_gid)
        home.chmod(0o750)

    def check(self) -> None:
        """vtysh's grammar check (exits non-zero), then each daemon's own dry run.

        The dry run runs as frr inside the node, so it also catches files frr cannot
        open; it exits 0 whatever it finds, hence the scan of its messages.
        """
        for d in self.daemons:
            self.run_checked([VTYSH, "-C", "-f", str(self.conf(d))], f"vtysh -C {self.conf(d).name}")
            r = self.node.run([*self._argv(d), "-C"])
            out = (r.stdout + r.stderr).strip()
            bad = [line for line in out.splitlines() if DRYRUN_ERROR.search(line)]
            if r.returncode != 0 or bad:
                raise self.fail(f"{d} -C rejected {self.conf(d).name}", extra=out[-3000:])

    def start(self) -> None:
        """Spawn each daemon in the foreground (no -d) so this process is its parent.

        Daemonized (-d) FRR daemons are reparented to PID 1, which on this machine is
        slow to reap them: stopped routers linger as zombies.  As our children they are
        reaped in stop(), and a daemon that dies at start shows up in proc.poll().
        """
        self.started_at = time.monotonic()
        self.procs: dict[str, Any] = {}
        self.pids: dict[str, int] = {}
        self.zserv.unlink(missing_ok=True)      # a stale socket would pass the wait below
        for d in self.daemons:
            self.pidfile(d).unlink(missing_ok=True)
            proc = self.node.spawn(self._argv(d), log=self.start_log())
            self.procs[d], self.pids[d] = proc, proc.pid      # mnexec -a execs: same pid
            if d == "zebra":
                # A client that finds no API socket retries only 10 s later: wait for it.
                self._wait_for(lambda: self.zserv.exists(), "zebra", 5, "create its API socket")
        self.pid = self.pids["zebra"]

    def _wait_for(self, probe: Any, daemon: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            if self.procs[daemon].poll() is not None:
                raise self.fail(f"{daemon} exited with status {self.procs[daemon].returncode} before it could {what}",
                                log=self.start_log())
            if time.monotonic() > deadline:
                raise self.fail(f"{daemon} did not {what} within {timeout:g} s")
            time.sleep(0.01)

    def wait_ready(self, timeout: float) -> None:
        """Each daemon answers a show command on its own vty socket."""
        probes = {"zebra": "show zebra client summary", "ospfd": "show ip ospf json", "ripd": "show ip rip status"}

        def answers() -> bool:
            for d, proc in self.procs.items():
                if proc.poll() is not None:
                    raise self.fail(f"{d} (pid {proc.pid}) exited with status {proc.returncode}", log=self.start_log())
            return all(self.vtysh(probes[d], daemon=d).returncode == 0 for d in self.daemons)
        self.poll(answers, timeout, "answer on its vty sockets")

    def stop(self) -> None:
        """Routing daemon first, then zebra (which removes its routes from the kernel)."""
        pids, procs = getattr(self, "pids", {}), getattr(self, "procs", {})
        for d in reversed(self._known_daemons()):
            pid = pids.get(d) or read_pid(self.pidfile(d))
            if pid:
                stop_pid(pid)
            proc = procs.get(d)
            if proc is not None:
                try:
                    proc.wait(timeout=5)     # reap it; after SIGKILL this returns at once
                except Exception:
                    pass

    def logs(self) -> list[Path]:
        return [self.start_log(), *(self.logfile(d) for d in self._known_daemons())]

    def version(self) -> str:
        return command_version([str(FRR_BIN / "zebra"), "--version"],
                               lambda s: "FRRouting " + s.split("version", 1)[1].split()[0])

    # -- queries for scenario steps ------------------------------------------------
    def vtysh(self, command: str, daemon: str | None = None, timeout: float = 10) -> Any:
        args = [VTYSH, "--vty_socket", str(self.home)]
        if daemon:
            args += ["-d", daemon]
        return self.node.run([*args, "-c", command], timeout=timeout)

    def show_json(self, command: str, daemon: str | None = None) -> Any:
        r = self.vtysh(command, daemon)
        if r.returncode != 0:
            raise self.fail(f"vtysh -c '{command}' failed (exit {r.returncode})",
                            extra=(r.stdout + r.stderr).strip()[-2000:])
        try:
            return json.loads(r.stdout or "{}")
        except json.JSONDecodeError as exc:
            raise self.fail(f"vtysh -c '{command}' did not return JSON: {exc}", extra=r.stdout[-2000:])

    def routes(self) -> list[dict[str, Any]]:
        """The router's IPv4 table as zebra sees it (``show ip route json``)."""
        out = []
        for prefix, entries in self.show_json("show ip route json", "zebra").items():
            for e in entries:
                out.append({
                    "prefix": prefix, "protocol": e.get("protocol"),
                    "selected": bool(e.get("selected")), "installed": bool(e.get("installed")),
                    "distance": e.get("distance"), "metric": e.get("metric"),
                    "nexthops": [{"ip": nh.get("ip"), "interface": nh.get("interfaceName"),
                                  "active": bool(nh.get("active")), "connected": bool(nh.get("directlyConnected"))}
                                 for nh in e.get("nexthops", [])],
                })
        return out

    def ospf_neighbors(self) -> list[dict[str, Any]]:
        """OSPF adjacencies (``show ip ospf neighbor json``); state reads e.g. ``Full/-``."""
        data = self.show_json("show ip ospf neighbor json", "ospfd")
        out = []
        for nbr_id, entries in data.get("neighbors", {}).items():
            for e in entries:
                out.append({"neighbor_id": nbr_id, "state": e.get("state", ""),
                            "address": e.get("address"), "interface": e.get("ifaceName", "").split(":")[0],
                            "dead_ms": e.get("deadTimeMsecs")})
        return out

    def rip_routes(self) -> list[dict[str, Any]]:
        """Routes this router learnt over RIP and installed."""
        return [r for r in self.routes() if r["protocol"] == "rip" and r["selected"]]

    def converged(self, expected_prefixes: set[str]) -> bool:
        """True when the table holds an installed route to every expected prefix."""
        have = {ipaddress.ip_network(r["prefix"]) for r in self.routes() if r["selected"] and r["installed"]}
        want = {ipaddress.ip_network(p, strict=False) for p in expected_prefixes}
        return want <= have
