"""Check phases about what runs on the network: mail domains, routing, firewall policy."""

from __future__ import annotations

import ipaddress

from lab.errors import Problem
from lab.model.checks.context import Ctx
from lab.model.mtasts import STS_HOST
from lab.model.policy import ROUTING_ROLES, Routing
from lab.model.schema import suggest
from lab.model.topology import DOMAIN_RE, USER_RE
from lab.model.wiring import static_address
from lab.model.yamlload import PathKey


def domains(c: Ctx) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    for dom, md in t.domains.items():
        where: PathKey = ("domains", dom)
        if not DOMAIN_RE.fullmatch(dom):
            out.append(c.p(where, f"'{dom}' is not a DNS domain name"))
        for key, role in (("mail", "mail"), ("dns", "dns")):
            ref = getattr(md, key)
            if ref is None:
                continue
            if ref not in t.nodes:
                out += c.unknown_node(where + (key,), ref)
            elif t.nodes[ref].role != role:
                out.append(c.p(where + (key,), f"node '{ref}' has role '{t.nodes[ref].role}', not '{role}'"))
        if md.public is not None:
            ref = md.public.dns
            if ref not in t.nodes:
                out += c.unknown_node(where + ("public", "dns"), ref)
            elif t.nodes[ref].role != "dns":
                out.append(c.p(where + ("public", "dns"), f"node '{ref}' has role '{t.nodes[ref].role}', not 'dns'"))
            elif ref == md.dns:
                out.append(
                    c.p(
                        where + ("public", "dns"), "the public copy must live on another DNS server than the inside one"
                    )
                )
        for user in md.users:
            if not USER_RE.fullmatch(user):
                out.append(
                    c.p(
                        where + ("users", user),
                        f"'{user}' is not a valid mailbox name",
                        "lower-case letters, digits, '.', '_' or '-'",
                    )
                )
    return out + _mail_users(c)


def _mail_users(c: Ctx) -> list[Problem]:
    """A host's ``user`` is an account of a declared domain, on a host, used once."""
    out: list[Problem] = []
    owner: dict[str, str] = {}
    for name, node in c.t.nodes.items():
        if node.user is None:
            continue
        where: PathKey = ("nodes", name, "user")
        if node.role != "host":
            out.append(c.p(where, f"only hosts have a user; '{name}' is a {node.role}", "remove 'user' here"))
            continue
        local, _, dom = node.user.partition("@")
        md = c.t.domains.get(dom)
        if md is None or local not in md.users:
            known = sorted(f"{u}@{d}" for d, m in c.t.domains.items() for u in m.users)
            hint = suggest(node.user, known) or (
                f"one of: {', '.join(known[:8])}" if known else "declare it under domains"
            )
            out.append(c.p(where, f"'{node.user}' is not a user of the topology's domains", hint))
        elif node.user in owner:
            out.append(c.p(where, f"{node.user} is already the user of '{owner[node.user]}'"))
        else:
            owner[node.user] = name
    return out


def routing(c: Ctx) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    r = t.routing
    if not isinstance(r, Routing):
        return out
    routers = [n for n, v in t.nodes.items() if v.role in ROUTING_ROLES]
    for router, routes in r.routes.items():
        where: PathKey = ("routing", "routes", router)
        node = t.nodes.get(router)
        if node is None or node.role not in ROUTING_ROLES:
            out.append(
                c.p(
                    where,
                    f"'{router}' is not a router" if node else f"unknown node '{router}'",
                    suggest(router, routers),
                )
            )
            continue
        if r.mode != "static":
            out.append(
                c.p(
                    where,
                    f"static routes are listed but routing mode is '{r.mode}'",
                    "set mode: static, or remove routes",
                )
            )
        mine = [c.w.subnets[i.subnet].network for i in c.w.interfaces[router]]
        for j, route in enumerate(routes):
            if route.to != "default":
                try:
                    ipaddress.IPv4Network(route.to)
                except ValueError:
                    out.append(
                        c.p(
                            where + (j, "to"),
                            f"'{route.to}' is not a network in CIDR form",
                            "write it like 10.0.2.0/24, or 'default'",
                        )
                    )
            try:
                via = ipaddress.IPv4Address(route.via)
            except ValueError:
                out.append(c.p(where + (j, "via"), f"'{route.via}' is not an IPv4 address"))
                continue
            if router not in c.suspect and not any(via in net for net in mine):
                out.append(
                    c.p(
                        where + (j, "via"),
                        f"{via} is not on a subnet '{router}' joins",
                        "a next hop must be a neighbour: " + ", ".join(map(str, mine)),
                    )
                )
    return out


def firewalls(c: Ctx) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    for fw, pol in t.firewalls.items():
        where: PathKey = ("firewalls", fw)
        node = t.nodes.get(fw)
        if node is None or node.role != "firewall":
            out.append(
                c.p(
                    where,
                    f"'{fw}' is not a firewall node" if node else f"unknown node '{fw}'",
                    suggest(fw, [n for n, v in t.nodes.items() if v.role == "firewall"]),
                )
            )
            continue
        out += _zones(c, fw)
        zones = list(pol.zones)
        for j, rule in enumerate(pol.allow):
            for key, val in (("from", rule.from_), ("to", rule.to)):
                if val not in pol.zones:
                    out.append(c.p(where + ("allow", j, key), f"unknown zone '{val}'", suggest(val, zones)))
        for j, inb in enumerate(pol.inbound):
            if inb.from_ not in pol.zones:
                out.append(
                    c.p(where + ("inbound", j, "from"), f"unknown zone '{inb.from_}'", suggest(inb.from_, zones))
                )
        for j, m in enumerate(pol.masquerade):
            for key, val in (("from", m.from_), ("to", m.to)):
                if val not in pol.zones:
                    out.append(c.p(where + ("masquerade", j, key), f"unknown zone '{val}'", suggest(val, zones)))
        for j, f in enumerate(pol.forward):
            if f.zone not in pol.zones:
                out.append(c.p(where + ("forward", j, "zone"), f"unknown zone '{f.zone}'", suggest(f.zone, zones)))
            if f.to not in t.nodes:
                out += c.unknown_node(where + ("forward", j, "to"), f.to)
            elif t.nodes[f.to].role == "switch" or not any(
                static_address(t, i) not in (None, "dhcp") for i in c.w.interfaces.get(f.to, [])
            ):
                out.append(c.p(where + ("forward", j, "to"), f"'{f.to}' has no static address to forward to"))
    for name, node in t.nodes.items():
        if node.role == "firewall" and name not in t.firewalls and f"firewalls.{name}" not in c.broken:
            out.append(
                c.p(
                    ("nodes", name),
                    f"firewall '{name}' has no policy",
                    f"add firewalls.{name} with zones and allow rules",
                )
            )
    return out


def _zones(c: Ctx, fw: str) -> list[Problem]:
    pol, where, out = c.t.firewalls[fw], ("firewalls", fw), []
    joined = {i.subnet for i in c.w.interfaces[fw]}
    zoned: dict[str, str] = {}
    for zone, subs in pol.zones.items():
        for j, sub in enumerate(subs):
            if sub not in joined:
                if fw not in c.suspect:
                    out.append(
                        c.p(
                            where + ("zones", zone, j),
                            f"'{fw}' has no interface on subnet '{sub}'",
                            suggest(sub, sorted(joined)) or "its subnets: " + ", ".join(sorted(joined)),
                        )
                    )
            elif sub in zoned:
                out.append(c.p(where + ("zones", zone, j), f"subnet '{sub}' is already in zone '{zoned[sub]}'"))
            zoned[sub] = zone
    if fw not in c.suspect:
        for sub in sorted(joined - set(zoned)):
            out.append(
                c.p(
                    where + ("zones",),
                    f"subnet '{sub}' of '{fw}' is in no zone",
                    "every interface of a firewall needs a zone",
                )
            )
    return out


def security(c: Ctx) -> list[Problem]:
    """The mail security knobs: what each one rests on, and middleboxes on routers only."""
    t, sec, out = c.t, c.t.security, []
    roles = {v.role for v in t.nodes.values()}
    if sec.dane and not sec.dnssec:
        out.append(
            c.p(
                ("security", "dane"),
                "DANE needs DNSSEC: unsigned TLSA records prove nothing, and Postfix ignores them",
                "add 'dnssec: true' to security, or use MTA-STS instead",
            )
        )
    if sec.mta_sts:
        out += _mta_sts(c)
    if sec.dnssec and "dns" not in roles:
        out.append(c.p(("security", "dnssec"), "dnssec: the topology has no DNS node to sign its zones"))
    for key in ("filtering", "fail2ban"):
        if getattr(sec, key) and "mail" not in roles:
            out.append(c.p(("security", key), f"{key}: the topology has no mail node"))
    for name, node in t.nodes.items():
        if node.middlebox is not None and node.role not in ("router", "firewall"):
            out.append(
                c.p(
                    ("nodes", name, "middlebox"),
                    f"'{name}' is a {node.role}: a middlebox runs on a router on the path",
                    "put it on a router: " + (", ".join(n for n, v in t.nodes.items() if v.role == "router") or "none"),
                )
            )
    return out


def _mta_sts(c: Ctx) -> list[Problem]:
    """MTA-STS rests on DNS (the _mta-sts record) and on an HTTPS host named mta-sts.<domain>:
    the MX serves it on 443, so that name and port must be free there."""
    t, out = c.t, []
    where = ("security", "mta_sts")
    if not t.domains:
        out.append(c.p(where, "mta_sts: the topology has no mail domain to publish a policy for"))
    if not any(v.role == "dns" for v in t.nodes.values()):
        out.append(c.p(where, "mta_sts: the topology has no DNS node to publish the _mta-sts record"))
    for name, node in t.nodes.items():
        taken = [a for a in node.aliases if a == STS_HOST]
        if name == STS_HOST or taken:
            key: PathKey = ("nodes", name) if name == STS_HOST else ("nodes", name, "aliases")
            out.append(
                c.p(
                    key,
                    f"the name '{STS_HOST}' is the host of the MTA-STS policy (security.mta_sts)",
                    "rename the node or drop the alias",
                )
            )
    for dom, md in t.domains.items():
        mx = t.nodes.get(md.mail)
        if mx is not None and (mx.role == "webmail" or "webmail" in mx.services):
            out.append(
                c.p(
                    ("domains", dom, "mail"),
                    f"mta_sts: '{md.mail}' serves {dom}'s policy on port 443, which its webmail already uses",
                    "put the webmail on a node of its own",
                )
            )
    return out
