"""A Mininet-style command line on a running lab (``lab cli``).

Mininet's own CLI needs the Mininet object, which lives in the ``lab up`` holder
process; this one reaches the nodes the way ``lab exec`` does (``nsenter`` into its namespaces)
and keeps Mininet's syntax: ``pc1 ping -c1 mail`` runs ``ping`` inside pc1, with
node names in the arguments replaced by their addresses.
"""

from __future__ import annotations

import cmd
import shlex
import subprocess
from typing import Any

from lab.runtime.node import enter


class LabCLI(cmd.Cmd):
    intro = (
        "mail-lab CLI on lab {prefix} ({name}). 'help' for commands, '<node> <command>' runs a command "
        "inside a node (node names become addresses), 'exit' leaves (the lab keeps running)."
    )
    prompt = "mail-lab> "

    def __init__(self, info: dict[str, Any]):
        super().__init__()
        self.info = info
        self.nodes: dict[str, Any] = info["nodes"]
        self.intro = self.intro.format(prefix=info["prefix"], name=info["name"])

    def run_in(self, node: str, args: list[str]) -> int:
        pid = str(self.nodes[node]["pid"])
        args = [self.nodes[a]["addresses"][0] if a in self.nodes and self.nodes[a]["addresses"] else a for a in args]
        return subprocess.call(enter(int(pid), args))

    # typeshed types Cmd.default as -> None, but Cmd.onecmd returns its result as the stop flag
    def default(self, line: str) -> bool:  # type: ignore[override]
        parts = shlex.split(line)
        if parts and parts[0] in self.nodes:
            if len(parts) == 1:
                print(f"usage: {parts[0]} <command>")
            else:
                self.run_in(parts[0], parts[1:])
            return False
        print(f"unknown command or node: {parts[0] if parts else line!r} (nodes: {' '.join(self.nodes)})")
        return False

    def do_nodes(self, arg: str) -> None:
        """List the nodes."""
        print(" ".join(self.nodes))

    def do_net(self, arg: str) -> None:
        """The links (which node is wired to which, on which subnet), then each node's addresses."""
        for lk in self.info.get("links", []):
            state = "" if lk.get("up", True) else "  (down)"
            print(f"{lk['a']:>10} <-> {lk['b']:<10} {lk.get('subnet') or ''}{state}")
        for name, n in self.nodes.items():
            print(f"{name:10} {n['role']:8} {n['fqdn']:28} {' '.join(n['interfaces'])}  {' '.join(n['addresses'])}")

    def do_help(self, arg: str) -> None:
        """What you can type here."""
        if arg:
            super().do_help(arg)
            return
        first = next(iter(self.nodes))
        other = list(self.nodes)[-1]
        domain = self.nodes[first]["fqdn"].split(".", 1)[-1]
        print(f"""  <node> <command...>   run a command inside a node; other node names become addresses,
                        e.g. {first} ping -c1 {other}   {first} ip route   {first} dig MX {domain}
  nodes                 the node names
  net                   the links and every node's addresses
  dump                  nodes with the pid of their namespace holder
  pingall               one ping from every node to every other
  exit                  leave (the lab keeps running: 'lab down' stops it)""")

    def do_dump(self, arg: str) -> None:
        """Nodes with the PID of their namespace holder."""
        for name, n in self.nodes.items():
            print(f"<{n['role']} {name}: {','.join(n['addresses'])} pid={n['pid']}>")

    def do_pingall(self, arg: str) -> None:
        """Ping every node's first address from every other node (one packet each)."""
        total = lost = 0
        for a in self.nodes:
            row = []
            for b, nb in self.nodes.items():
                if a == b or not nb["addresses"]:
                    continue
                total += 1
                ok = (
                    subprocess.call(
                        enter(int(self.nodes[a]["pid"]), ["ping", "-c1", "-W1", nb["addresses"][0]]),
                        stdout=subprocess.DEVNULL,
                    )
                    == 0
                )
                lost += not ok
                row.append(b if ok else "X")
            print(f"{a} -> {' '.join(row)}")
        print(f"*** Results: {100 * lost // max(total, 1)}% dropped ({total - lost}/{total} received)")

    def do_exit(self, arg: str) -> bool:
        """Leave the CLI; the lab keeps running ('lab down' stops it)."""
        return True

    do_quit = do_exit
    do_EOF = do_exit

    def emptyline(self) -> bool:
        return False
