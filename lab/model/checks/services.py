"""Check phase about the daemons a node runs besides its role's: webmail, ssh, calendar,
the certificate each serves, the ACME CA and the SSH administrators."""

from __future__ import annotations

from lab.errors import Problem
from lab.model.checks.context import Ctx
from lab.model.schema import suggest
from lab.model.topology import ADMIN_RE
from lab.model.yamlload import PathKey

#: which roles may also run each service (ssh: anything with an address)
SERVICE_HOSTS: dict[str, tuple[str, ...]] = {
    "webmail": ("mail",),  # a webmail role node runs it by its role
    "calendar": ("mail", "webmail"),
    "ssh": ("mail", "webmail", "dns", "dhcp", "router", "firewall", "host", "acme"),
}
#: nodes whose daemons serve TLS with the node's own certificate
TLS_ROLES = ("mail", "webmail")
#: accounts of the machine an administrator's name must not take over
RESERVED_ACCOUNTS = frozenset(
    [
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "gnats",
        "nobody",
        "postfix",
        "dovecot",
        "dovenull",
        "bind",
        "_kea",
        "kea",
        "frr",
        "tcpdump",
        "sshd",
        "messagebus",
        "systemd-network",
        "systemd-resolve",
        "radicale",
        "pebble",
        "_apt",
    ]
)


def services(c: Ctx) -> list[Problem]:
    t = c.t
    out: list[Problem] = []
    acme_nodes = [n for n, v in t.nodes.items() if v.role == "acme"]
    mail_nodes = [n for n, v in t.nodes.items() if v.role == "mail"]
    ssh_nodes = []
    for name, node in t.nodes.items():
        where: PathKey = ("nodes", name)
        for j, svc in enumerate(node.services):
            if node.role not in SERVICE_HOSTS[svc]:
                out.append(
                    c.p(
                        where + ("services", j),
                        f"a {node.role} node cannot run {svc}",
                        f"{svc} runs on: " + ", ".join(SERVICE_HOSTS[svc]),
                    )
                )
            if svc in node.services[:j]:
                out.append(c.p(where + ("services", j), f"'{svc}' is listed twice"))
        if "ssh" in node.services:
            ssh_nodes.append(name)
        if node.certificate is not None:
            serves_tls = node.role in TLS_ROLES or "calendar" in node.services
            if not serves_tls:
                out.append(
                    c.p(
                        where + ("certificate",),
                        f"a {node.role} node serves no TLS: its certificate would be used by nothing",
                        "give certificate to a mail or webmail node",
                    )
                )
            if node.certificate == "acme" and len(acme_nodes) != 1:
                out.append(
                    c.p(
                        where + ("certificate",),
                        "certificate 'acme' needs exactly one node of role acme (the lab's ACME CA)"
                        + (f"; there are {len(acme_nodes)}" if acme_nodes else ""),
                        "add e.g. ca: {role: acme, address: ...}",
                    )
                )
        if node.mail_server is not None:
            if node.role != "webmail":
                out.append(c.p(where + ("mail_server",), "only a webmail node names a mail_server"))
            elif node.mail_server not in t.nodes:
                out += c.unknown_node(where + ("mail_server",), node.mail_server, mail_nodes)
            elif t.nodes[node.mail_server].role != "mail":
                out.append(
                    c.p(
                        where + ("mail_server",),
                        f"'{node.mail_server}' is a {t.nodes[node.mail_server].role} node, not a mail node",
                        suggest(node.mail_server, mail_nodes),
                    )
                )
        elif node.role == "webmail" and len(mail_nodes) != 1:
            out.append(
                c.p(
                    where,
                    "a webmail node needs mail_server: the mail node Roundcube logs into",
                    "mail nodes: " + ", ".join(mail_nodes) if mail_nodes else "the topology has no mail node",
                )
            )
    for user in t.admins:
        if not ADMIN_RE.fullmatch(user):
            out.append(
                c.p(("admins", user), f"'{user}' is not a Unix account name", "lower-case letters, digits, '_', '-'")
            )
        elif user in RESERVED_ACCOUNTS:
            out.append(c.p(("admins", user), f"'{user}' is an account of the machine itself", "choose another name"))
    if ssh_nodes and not t.admins:
        out.append(
            c.p(
                ("nodes", ssh_nodes[0], "services"),
                "ssh runs here but the topology has no admins: nobody could log in",
                "add admins: {admin: {}}",
            )
        )
    return out
