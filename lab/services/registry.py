"""Which daemons run where, and in which order: the one list a new daemon joins.

Each entry is a ``Service`` class; it says itself which nodes it runs on
(``applies``: by role by default) and when (``stage``: every service of a stage is
ready before the next stage starts).  ``lab.deploy`` brings them up in that order
and tears them down in the reverse one.  A new daemon is one class and one line here.
"""

from __future__ import annotations

from lab.model.nodeplan import NodePlan
from lab.model.plan import Plan
from lab.services.acme import Certbot, Pebble
from lab.services.base import Service
from lab.services.calendar import Radicale
from lab.services.clamav import Clamd
from lab.services.delay import DelayQueue
from lab.services.dhcp import Dhclient, Kea
from lab.services.dns import Bind
from lab.services.fail2ban import Fail2ban
from lab.services.firewall import Firewall
from lab.services.frr import Frr
from lab.services.mail import Dovecot, Postfix
from lab.services.mailclient import MailClient
from lab.services.middlebox import StartTlsStrip
from lab.services.mtasts import StsPolicy, StsResolver
from lab.services.openvpn import OpenVpn
from lab.services.rspamd import Rspamd
from lab.services.ssh import Sshd
from lab.services.web import Nginx, Squid
from lab.services.webmail import Apache

SERVICES: tuple[type[Service], ...] = (
    DelayQueue,  # 5: link delays where the kernel has no netem (NFQUEUE helper)
    Firewall,  # 10: zone firewall and NAT (nftables) on firewall nodes
    StartTlsStrip,  # 12: an attacker's STARTTLS-stripping proxy on a router (nodes.X.middlebox)
    Frr,  # 20: OSPF or RIP on routers, when the topology routes dynamically
    Clamd,  # 22: virus scanner of filtering mail nodes (ready by the end)
    Rspamd,  # 22: the milter of filtering mail nodes: DKIM, SPF, DMARC, spam (ready by the end)
    OpenVpn,  # 25: VPN ends (OpenVPN over TUN)
    Bind,  # 30: DNS servers
    Kea,  # 40: DHCP servers
    Pebble,  # 42: the lab's ACME CA on acme nodes
    Certbot,  # 45: a node's ACME certificate, before the daemons that serve it
    StsPolicy,  # 48: a mail domain's MTA-STS policy over HTTPS on its MX (security.mta_sts; ready by the end)
    StsResolver,  # 48: mta-sts-daemon, the MTA-STS resolver Postfix asks before it relays (ready by the end)
    Postfix,  # 50: mail nodes: MTA and submission
    Dovecot,  # 60: mail nodes: IMAP, POP3, LMTP, SASL
    Fail2ban,  # 70: bans sources of failed logins on mail nodes (security.fail2ban)
    Squid,  # 70: proxy nodes: the forward proxy
    Nginx,  # 70: web nodes: HTTP and HTTPS
    Apache,  # 70: Roundcube webmail over HTTPS (webmail nodes, or services: [webmail])
    Radicale,  # 70: CalDAV (services: [calendar])
    Sshd,  # 70: key-only administration (services: [ssh])
    Dhclient,  # 90: DHCP clients, once the servers answer
    MailClient,  # 95: s-nail and swaks set up for the user of each host (files, no daemon)
)

#: the daemons a scenario's `service` step may stop and start, by name
BY_DAEMON: dict[str, type[Service]] = {cls.daemon: cls for cls in SERVICES}


def services_for(node: NodePlan, plan: Plan) -> list[type[Service]]:
    """The service classes that run on ``node``, in bring-up order."""
    return sorted((cls for cls in SERVICES if cls.applies(node, plan)), key=lambda c: c.stage)


def stages(plan: Plan) -> list[tuple[int, list[tuple[str, type[Service]]]]]:
    """(stage, [(node, service class)]) in bring-up order."""
    by_stage: dict[int, list[tuple[str, type[Service]]]] = {}
    for name, node in plan.nodes.items():
        for cls in services_for(node, plan):
            by_stage.setdefault(cls.stage, []).append((name, cls))
    return sorted(by_stage.items())
