"""rspamd, the milter of a mail node: DKIM signing, SPF/DKIM/DMARC checks, spam and virus verdicts.

One instance per mail node of a topology with ``security.filtering``.  CONFDIR stays
Debian's ``/etc/rspamd``; everything of the node is in its own LOCAL_CONFDIR (the
templates in ``lab/mailnode/rspamd/``), DBDIR, RUNDIR and LOGDIR, and a private
``/var/lib/rspamd`` (rspamd's main process writes ``*.hsmp`` there whatever DBDIR says).

Stock rspamd spends 0.6 s of CPU loading (measured from a warmed DBDIR) and 20 s cold,
compiling the 9,628 suffixes of the public suffix list into a 43 MB hyperscan database.
The lab's instance loads in about 0.1 s, cold, with no cache to keep (measured with
/proc/<pid>/stat after it answers; docs/architecture.md has the figures):

- ``url_tld`` is a public suffix list cut down to the rules that apply to the lab's own
  domains (``lab_suffixes``): DMARC finds the same organisational domain as with the
  whole list, and there is nothing big to compile;
- the language detector reads English only (all 46 languages: 33,122 trigrams);
- ``ssl_ca_path`` is the run's lab CA, not the machine's 140 CA certificates;
- the modules a closed lab cannot or does not use are off (``DISABLED``): blocklists
  and maps on the internet, Redis-backed modules, exporters, content heuristics.
  DKIM signing and checks, SPF, DMARC, antivirus, GTUBE (rspamd's core) and the
  milter headers stay.

It starts early and is waited for last (``ready_by``): the other daemons come up while it loads.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import time
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from lab.model.mailconfig import LAB_MILTER
from lab.model.plan import MailHost, NodePlan, Plan
from lab.model.zones import DKIM_SELECTOR
from lab.runtime import proc
from lab.runtime.node import netns
from lab.services.base import MAILNODE, Service, Template, command_version, read_pid

MILTER_PORT, CONTROLLER_PORT = 11332, 11334
#: what Postfix is told (main.cf smtpd_milters); the only milter an override may name
MILTER = LAB_MILTER
LOCAL_FILES = (
    "worker-proxy.inc",
    "worker-normal.inc",
    "worker-controller.inc",
    "logging.inc",
    "options.inc",
    "actions.conf",
    "milter_headers.conf",
    "dkim_signing.conf",
    "dmarc.conf",
    "antivirus.conf",
)
#: modules switched off, and why (each gets ``local.d/<module>.conf: enabled = false``)
DISABLED = {
    "fuzzy_check": "its hashes are at rspamd.com (no internet; resolving them stalls the start 5 s)",
    "rbl": "DNS blocklists on the internet",
    "surbl": "URL blocklists on the internet",
    "emails": "address blocklists on the internet",
    "asn": "asn.rspamd.com on the internet",
    "phishing": "OpenPhish and PhishTank feeds on the internet",
    "multimap": "its freemail and disposable-address maps come from maps.rspamd.com",
    "rspamd_update": "rule updates from the internet",
    "whitelist": "reputation of well-known internet domains",
    "neural": "needs Redis (the lab runs none)",
    "history_redis": "needs Redis",
    "ratelimit": "needs Redis",
    "greylist": "needs Redis (and a lab cannot wait minutes for a retry)",
    "reputation": "needs Redis",
    "replies": "needs Redis",
    "bayes_expiry": "needs Redis",
    "url_redirector": "needs Redis and the internet",
    "clickhouse": "an exporter: no server",
    "elastic": "an exporter: no server",
    "metadata_exporter": "an exporter: no server",
    "metric_exporter": "an exporter: no server",
    "regexp": "content heuristics (122 rules): the lab grades authenticity, GTUBE and viruses",
    "hfilter": "content heuristics (HELO and host name checks)",
    "mid": "content heuristics (Message-ID)",
    "mime_types": "content heuristics (attachment types)",
    "once_received": "content heuristics (Received headers)",
    "forged_recipients": "content heuristics",
    "maillist": "content heuristics (mailing lists)",
    "chartable": "content heuristics (mixed scripts)",
    "spamtrap": "no spam traps",
    "spamassassin": "no SpamAssassin rules",
    "trie": "no patterns",
    "external_services": "no external scanners but ClamAV (antivirus)",
    "force_actions": "no forced actions but DMARC's and the antivirus' own",
    "arc": "no ARC: the lab's mail crosses one hop between domains",
}
LOAD_NICE = 10
#: the language the detector loads (its files in Debian's rspamd package)
LANGUAGES = Path("/usr/share/rspamd/languages")
PUBLIC_SUFFIXES = Path("/usr/share/rspamd/effective_tld_names.dat")


def lab_suffixes(psl: str, domains: list[str]) -> list[str]:
    """The rules of a public suffix list that can apply to ``domains``, and each domain's
    top label (the list's default rule ``*``): rspamd finds the same public suffix, so
    DMARC the same organisational domain, for every lab name."""
    names = {d.lower().rstrip(".") for d in domains if d}
    out: dict[str, None] = {}
    for raw in psl.splitlines():
        rule = raw.split("//", 1)[0].strip().lower()
        if not rule:
            continue
        tail = rule.lstrip("!")
        tail = tail[2:] if tail.startswith("*.") else tail
        if any(n == tail or n.endswith("." + tail) for n in names):
            out[rule] = None
    for n in sorted(names):
        out.setdefault(n.rsplit(".", 1)[-1], None)
    return list(out)


class Rspamd(Service):
    daemon = "rspamd"
    roles = ("mail",)
    stage = 22  # after the firewall, before BIND: it loads while the other daemons start
    ready_by: ClassVar[int] = 100  # waited for at the end of the bring-up
    ready_timeout = 30.0  # about 0.1 s of CPU, cold; a loaded machine may take a few seconds
    commands = ("rspamd", "rspamadm")
    stop_children = True  # its workers go with it (they exit with it; stragglers are reported)

    @classmethod
    def applies(cls, node: NodePlan, plan: Plan) -> bool:
        host = plan.mail.get(node.name)
        return node.role == "mail" and host is not None and host.filtering

    @classmethod
    def private_dirs(cls, ndir: Path) -> list[Any]:
        lib = ndir / "lib-rspamd"
        lib.mkdir(parents=True, exist_ok=True)
        _rspamd = pwd.getpwnam("_rspamd")
        os.chown(lib, _rspamd.pw_uid, _rspamd.pw_gid)
        return [("/var/lib/rspamd", str(lib))]

    @property
    def host(self) -> MailHost:
        return self.dep.plan.mail[self.node.name]

    @property
    def home(self) -> Path:
        return self.node.dir / "rspamd"

    def context(self) -> dict[str, Any]:
        return {
            "confdir": str(self.home / "local.d"),
            "logdir": str(self.home / "log"),
            "home": str(self.home),
            "ca_file": str(self.home / "ca.pem"),
            "tld_file": str(self.home / "lab-suffixes.dat"),
            "languages": str(self.home / "languages"),
            "selector": DKIM_SELECTOR,
            "domains": [
                {"name": d, "key": str(self.home / "dkim" / f"{d}.{DKIM_SELECTOR}.key")} for d in self.host.domains
            ],
        }

    def templates(self) -> list[Template]:
        ctx, local = self.context(), self.home / "local.d"
        d = MAILNODE / "rspamd"
        return [
            *(Template(d, f"{name}.j2", ctx, local / name) for name in LOCAL_FILES),
            Template(d, "rspamd.conf.local.j2", ctx, self.home / "rspamd.conf.local"),
            *(
                Template(d, "disabled.conf.j2", {"module": m, "why": why}, local / f"{m}.conf")
                for m, why in DISABLED.items()
            ),
        ]

    def domains(self) -> list[str]:
        """Every name the lab's DNS serves (its forward zones): the suffix list covers them."""
        return sorted({z.name for z in self.dep.plan.zones if not z.name.endswith(".arpa")})

    def render(self) -> None:
        _rspamd = pwd.getpwnam("_rspamd")
        for sub in ("run", "db", "log", "dkim", "languages"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
            os.chown(self.home / sub, _rspamd.pw_uid, _rspamd.pw_gid)
        super().render()
        for d in self.host.domains:
            key = self.home / "dkim" / f"{d}.{DKIM_SELECTOR}.key"
            key.write_bytes(self.dep.keys.dkim(d).private_pem)
            os.chown(key, 0, _rspamd.pw_gid)
            key.chmod(0o640)
        for name in ("en.json", "stop_words"):  # the detector reads every *.json of its folder
            link = self.home / "languages" / name
            link.unlink(missing_ok=True)
            link.symlink_to(LANGUAGES / name)
        suffixes = _suffixes(tuple(self.domains()))
        self.write(self.home / "lab-suffixes.dat", "".join(f"{r}\n" for r in suffixes))
        shutil.copyfile(self.dep.ca.ca_file, self.home / "ca.pem")
        (self.home / "ca.pem").chmod(0o644)

    def check(self) -> None:
        """No ``rspamadm configtest`` here: it loads the whole Lua config (1.2 s of CPU per
        node).  rspamd checks the same config when it starts and exits on an error, which
        ``wait_ready`` reports at once with its log (and the command to run by hand)."""

    def _vars(self) -> list[str]:
        h = self.home
        return [
            f"--var=LOCAL_CONFDIR={h}",
            f"--var=RUNDIR={h / 'run'}",
            f"--var=DBDIR={h / 'db'}",
            f"--var=LOGDIR={h / 'log'}",
        ]

    @property
    def pidfile(self) -> Path:
        return self.home / "run" / "rspamd.pid"

    def start(self) -> None:
        """In the foreground of a process of our own (``-f``): rspamd loads its config for
        about a second before it would daemonize, and the bring-up need not wait for that."""
        self.started_at = time.monotonic()
        self.pidfile.unlink(missing_ok=True)
        # niced while it loads: the daemons on the bring-up's critical path get the CPU first
        argv = ["nice", "-n", str(LOAD_NICE), "rspamd", "-f", "-u", "_rspamd", "-g", "_rspamd"]
        argv += ["-c", "/etc/rspamd/rspamd.conf"]
        self.child = self.node.spawn([*argv, "-p", str(self.pidfile), *self._vars()], log=self.start_log())
        self.pid = self.child.pid  # mnexec and nice exec rspamd itself

    def wait_ready(self, timeout: float) -> None:
        def answers() -> bool:
            with netns(self.node.pid):
                socket.create_connection(("127.0.0.1", MILTER_PORT), timeout=1).close()
                s = socket.create_connection(("127.0.0.1", CONTROLLER_PORT), timeout=1)
            try:
                s.settimeout(2)
                s.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
                reply = s.recv(4096)
            finally:
                s.close()
            return reply.startswith(b"HTTP/1.") and b" 200 " in reply[:20] and b"pong" in reply

        self.poll(
            answers,
            timeout,
            "answer on its milter port and the controller's /ping",
            hint=f"check the config inside the node: rspamadm {' '.join(self._vars())} configtest",
        )
        for pid in [self.pid or 0, *proc.children(self.pid or 0)]:
            try:
                os.setpriority(os.PRIO_PROCESS, pid, 0)  # loaded: scan at normal priority
            except OSError:
                pass

    def stop(self) -> list[int]:
        self.pid = self.pid or read_pid(self.pidfile)
        return super().stop()

    def logs(self) -> list[Path]:
        return [self.home / "log" / "rspamd.log"]

    def version(self) -> str:
        return command_version(["rspamd", "--version"])


@cache
def _suffixes(domains: tuple[str, ...]) -> list[str]:
    """The lab's suffix list, read once for every mail node of a run (the whole list is 230 kB)."""
    return lab_suffixes(PUBLIC_SUFFIXES.read_text(errors="replace"), list(domains))
