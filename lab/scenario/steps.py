"""Every scenario action, registered: ``ACTIONS`` maps a step kind to its function.

The actions live in ``mail_steps``, ``net_steps``, ``wait_steps`` and ``web_steps``; importing this
module imports them all (the runner and the pytest plugin do).
"""

from __future__ import annotations

from lab.scenario import mail_steps, net_steps, wait_steps, web_steps
from lab.scenario.context import ACTIONS, Context, Outcome, failed, passed

__all__ = ["ACTIONS", "Context", "Outcome", "failed", "mail_steps", "net_steps", "passed", "wait_steps", "web_steps"]
