"""Every scenario action, registered: ``ACTIONS`` maps a step kind to its function.

The actions live in ``mail_steps``, ``net_steps``, ``wait_steps``, ``web_steps`` (HTTP
through a proxy), ``server_steps`` (webmail, certificates, TLS, SSH) and ``calendar_steps``
(meetings); importing this
module imports them all (the runner and the pytest plugin do).
"""

from __future__ import annotations

from lab.scenario import calendar_steps, mail_steps, net_steps, server_steps, wait_steps, web_steps
from lab.scenario.context import ACTIONS, Context, Outcome, failed, passed

__all__ = [
    "ACTIONS",
    "Context",
    "Outcome",
    "calendar_steps",
    "failed",
    "mail_steps",
    "net_steps",
    "passed",
    "server_steps",
    "wait_steps",
    "web_steps",
]
