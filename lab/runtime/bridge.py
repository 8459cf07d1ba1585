"""Linux bridges for lab switches: plain, hub (floods every frame) or with STP.

Mininet's LinuxBridge sets STP options through brctl after the ports are added and
passes ``setbridgeprio`` no bridge name; this one creates the bridge with ``ip link``
and all its options first, then adds the ports.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from mininet.nodelib import LinuxBridge

# kernel minimums (centiseconds): forward delay 2 s, hello 1 s, max age 6 s
STP_OPTS = ["stp_state", "1", "forward_delay", "200", "hello_time", "100", "max_age", "600"]


class LabBridge(LinuxBridge):
    def __init__(self, name: str, hub: bool = False, stp: bool = False, **kwargs: Any):
        self.hub = hub
        super().__init__(name, stp=stp, **kwargs)

    def start(self, _controllers: Any) -> None:
        self.cmd("ip", "link", "del", self.name)
        opts = ["ageing_time", "0"] if self.hub else []
        if self.stp:
            opts += STP_OPTS + ["priority", str(self.prio)]
        self.cmd("ip", "link", "add", "name", self.name, "type", "bridge", *opts)
        for intf in self.intfList():
            if self.name in intf.name:
                self.cmd("ip", "link", "set", intf.name, "master", self.name)
                if self.hub:
                    # never learn where a MAC lives: every frame goes to every port
                    self.cmd(
                        "ip", "link", "set", "dev", intf.name, "type", "bridge_slave", "learning", "off", "flood", "on"
                    )
                self.cmd("ip", "link", "set", intf.name, "up")
        self.cmd("ip", "link", "set", self.name, "up")

    def stop(self, deleteIntfs: bool = True) -> None:
        self.cmd("ip", "link", "del", self.name)
        super(LinuxBridge, self).stop(deleteIntfs)

    def connected(self) -> bool:
        if not self.stp:
            return True
        out = self.cmd("bridge", "link", "show")
        return "forwarding" in out


def port_states(bridges: list[str]) -> dict[str, str]:
    """The STP state of every port of these bridges (forwarding, blocking, learning...)."""
    states: dict[str, str] = {}
    for br in bridges:
        r = subprocess.run(
            ["bridge", "-j", "link", "show", "master", br], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        for port in json.loads(r.stdout or "[]"):
            states[port["ifname"]] = port.get("state", "?")
    return states
