"""What every check phase looks at: the file, its wiring, and what is already known broken."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lab.errors import Problem
from lab.model.schema import suggest
from lab.model.topology import TopologyFile
from lab.model.wiring import Wiring
from lab.model.yamlload import Located, PathKey

SIMPLE_NAME = "use 1-15 lower-case letters, digits or '-', starting with a letter"


@dataclass(frozen=True)
class Ctx:
    t: TopologyFile
    src: Located
    w: Wiring
    broken: frozenset[str] = frozenset()  # entries the schema refused ("nodes.pc1", "links[3]")
    suspect: frozenset[str] = field(default=frozenset())  # nodes whose wiring is already reported wrong

    def p(self, path: PathKey, message: str, hint: str | None = None) -> Problem:
        return self.src.problem(path, message, hint)

    def known(self, node: str) -> bool:
        """A node of the file, even one the schema refused (so it is not 'unknown' again)."""
        return node in self.t.nodes or f"nodes.{node}" in self.broken

    def unknown_node(self, path: PathKey, ref: str, among: Iterable[str] | None = None) -> list[Problem]:
        if self.known(ref):
            return []
        names = list(among if among is not None else self.t.nodes)
        hint = suggest(ref, names) or (f"the nodes are: {', '.join(names[:12])}" + (" ..." if len(names) > 12 else ""))
        return [self.p(path, f"unknown node '{ref}'", hint if names else "declare it under nodes")]


Phase = Callable[[Ctx], list[Problem]]
