"""Mininet hosts with a hostname of their own (UTS namespace).

Mininet gives a host its own network and mount namespaces only, so every node would
print the machine's name (and mail would say ``EHLO vm``).  This host starts its shell
inside ``unshare --uts`` (unshare execs: the shell keeps the pid Mininet records) and
names itself; ``LabNode.argv`` enters the UTS namespace too (``nsenter -u``).
Measured recipe: ../shared/notes/network-and-seed.md, section 3.
"""

from __future__ import annotations

from typing import Any

from mininet.node import Host


class UTSHost(Host):
    def startShell(self, mnopts: Any = None) -> None:
        self._uts_wrap = True
        super().startShell(mnopts)

    def _popen(self, cmd: list[str], **params: Any) -> Any:
        if getattr(self, "_uts_wrap", False):  # only the shell Mininet spawns in startShell
            self._uts_wrap = False
            cmd = [cmd[0], cmd[1], "unshare", "--uts", *cmd[2:]]  # mnexec -cdn unshare --uts env PS1=.. bash ..
        return super()._popen(cmd, **params)
