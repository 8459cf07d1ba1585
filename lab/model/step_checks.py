"""Cross-checks of the web and tunnel steps (registered with ``lab.model.scenario_checks``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from lab.errors import Problem
from lab.model.mtasts import STS_HOST
from lab.model.scenario_checks import Refs, checks
from lab.model.schema import suggest
from lab.model.yamlload import PathKey


def site_names(r: Refs) -> set[str]:
    """Every host name the lab's DNS answers: each node's, its aliases, and the MTA-STS hosts."""
    t = r.plan.topology.data
    names = {n.fqdn for n in r.nodes.values()}
    for name, node in t.nodes.items():
        domain = r.nodes[name].domain
        names |= {f"{a}.{domain}" for a in node.aliases}
    # each mail domain's MTA-STS policy host: published with security.mta_sts; without it a
    # fetch finds no such host, which is what a weakened companion topology shows
    names |= {f"{STS_HOST}.{d}" for d in t.domains}
    return names


@checks("http")
def _http(r: Refs, s: Any, where: PathKey) -> list[Problem]:
    out = []
    host = str(urlsplit(s.url).hostname)
    names = site_names(r)
    if host not in names and r.node_named(host) is None:
        known = sorted(n for n in names if n.split(".")[0] != n)
        hint = suggest(host, names) or "the lab's names: " + ", ".join(known[:8]) + (" ..." if len(known) > 8 else "")
        out.append(r.p(where + ("url",), f"no node of the topology is called '{host}'", hint))
    if s.proxy is not None:
        node = r.node_named(s.proxy)
        if node is None or node.role != "proxy":
            proxies = [n.name for n in r.nodes.values() if n.role == "proxy"]
            out.append(
                r.p(
                    where + ("proxy",),
                    f"'{s.proxy}' is not a proxy node of the topology",
                    suggest(s.proxy, proxies) or ("proxies: " + ", ".join(proxies) if proxies else "it has none"),
                )
            )
    return out
