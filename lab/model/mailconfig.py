"""A mail node's ``config:`` overrides: data checked against the daemons' own settings.

A topology may replace Postfix and Dovecot settings (a student's change, or a
deliberately weakened server).  Those files come from students, and the lab runs as
root, so an override is never pasted as text: it must be

- a setting the installed daemon knows (``postconf -d`` / ``doveconf -d``, shipped in
  ``lab/model/data/`` and kept true to the installed versions by a test);
- one line of plain text: no line breaks or control characters, no braces (Dovecot
  blocks, Postfix ``{ }`` groups and ``${...}`` expressions), no ``$(`` or backticks;
- not one of the settings that name programs, files, privileges, lookup tables or
  outside servers (``DENIED`` below, each with the reason the error gives).

``overrides()`` lists every override next to the shipped (reference) value and says
which ones weaken security, for the terminal, summary.json and report.html.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lab.model.tlspolicy import INTERMEDIATE_TLS12, weakness

DATA = Path(__file__).parent / "data"

PROGRAM = (
    "it names a program, a command or loadable code; a topology never chooses what runs on the "
    "lab machine (the lab runs as root)"
)
FILE = "it names a file, a directory or a socket; the lab sets every path of the node itself"
PRIVILEGE = "it changes which users and groups the daemon runs as or trusts"
OUTSIDE = (
    "it makes the daemon hand mail, logins or questions to a program or server the lab does not run "
    "(pipe transports, filters, milters, proxies, policy servers)"
)
TABLE = "it reads a lookup table (a file or a server); the lab's own tables are fixed"

_POSTFIX_DENIED: list[tuple[str, str]] = [
    (
        r"mailbox_command|mailbox_command_maps|debugger_command|local_command_shell|allow_mail_to_commands|"
        r"allow_mail_to_files|command_directory|command_execution_directory|daemon_directory|shlib_directory|"
        r"meta_directory|import_environment|export_environment|sendmail_path|newaliases_path|mailq_path|"
        r"openssl_path|forward_path|postmulti_\w+|execution_directory_expansion_filter|command_expansion_filter|"
        r"\w*service_name",
        PROGRAM,
    ),
    (
        r"\w*transport|\w*transport_maps|content_filter|default_filter_nexthop|milter_\w+_macros|smtpd_milter_maps|"
        r"smtpd_proxy_filter|\w*_sasl_type|\w*fallback_relay",
        OUTSIDE,
    ),
    (r"mail_owner|setgid_group|default_privs|multi_instance_\w+|allow_min_user", PRIVILEGE),
    (r"\w*_maps|\w*_checks|alias_database|\w*_reply_filter", TABLE),
    (
        r"\w*_directory|\w*_directories|\w*_file|\w*_files|\w*_CAfile|\w*_CApath|\w*_path|tls_random_source|"
        r"maillog_file_prefixes|home_mailbox|mail_spool_directory|\w*_param_file",
        FILE,
    ),
]
_DOVECOT_DENIED: list[tuple[str, str]] = [
    (
        r"\w*_plugins|\w*_plugin_dir|libexec_dir|import_environment|sendmail_path|dsync_remote_cmd|"
        r"auth_use_winbind|auth_winbind_helper_path|mail_chroot|valid_chroot_dirs|doveadm_\w+",
        PROGRAM,
    ),
    (
        r"mail_uid|mail_gid|mail_privileged_group|mail_access_groups|first_valid_uid|last_valid_uid|"
        r"first_valid_gid|last_valid_gid|default_internal_user|default_internal_group|default_login_user",
        PRIVILEGE,
    ),
    (
        r"\w*_host|\w*_hosts|auth_policy_server_url|old_stats_carbon_server|imapc_\w+|pop3c_\w+|"
        r"submission_relay_\w+|director_\w+|replicator_\w+|replication_\w+|lmtp_proxy|auth_proxy_self",
        OUTSIDE,
    ),
    (
        r"\w*_dir|\w*_dirs|\w*_path|\w*_file|base_dir|state_dir|instance_name|mail_location|mail_home|"
        r"mail_attachment_fs|mail_full_filesystem_access|ssl_cert|ssl_key|ssl_ca|ssl_dh|ssl_alt_cert|ssl_alt_key|"
        r"ssl_client_cert|ssl_client_key|ssl_crypto_device|ssl_key_password|auth_krb5_keytab|dict_db_config|"
        r"mail_attribute_dict|login_access_sockets|\w*socket\w*",
        FILE,
    ),
]

#: Postfix lookup tables, written ``type:name`` inside a value (``check_client_access hash:/x``)
_TABLE_TYPES = re.compile(
    r"\b(btree|cdb|cidr|dbm|environ|fail|hash|inline|internal|ldap|lmdb|memcache|mysql|"
    r"netinfo|nis|nisplus|pcre|pgsql|pipemap|proxy|randmap|regexp|sdbm|socketmap|sqlite|"
    r"static|tcp|texthash|unionmap|unix|inet)\s*:",
    re.I,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,79}")
_SERVICE = re.compile(r"([a-z0-9][a-z0-9_.-]{0,39})/(inet|unix|unix-dgram|fifo|pass)/([a-z0-9][a-z0-9_-]{0,79})")
MAX_VALUE = 1000
#: the only milter a mail node may have: the lab's own rspamd on the node's loopback
LAB_MILTER = "inet:127.0.0.1:11332"
MILTER_SETTINGS = ("smtpd_milters", "non_smtpd_milters")
_MILTER_VALUES = ("", LAB_MILTER, "$smtpd_milters")


@cache
def known(daemon: str) -> frozenset[str]:
    """The setting names of the installed daemon (``postfix`` or ``dovecot``)."""
    name = {"postfix": "postfix-parameters.txt", "dovecot": "dovecot-settings.txt"}[daemon]
    lines = (DATA / name).read_text().splitlines()
    return frozenset(ln.strip() for ln in lines if ln.strip() and not ln.startswith("#"))


def daemon_version(daemon: str) -> str:
    """The version the shipped list was read from (its header line)."""
    name = {"postfix": "postfix-parameters.txt", "dovecot": "dovecot-settings.txt"}[daemon]
    head = (DATA / name).read_text().splitlines()[0]
    m = re.search(r"(Postfix|Dovecot) ([0-9.]+)", head)
    return f"{m.group(1)} {m.group(2)}" if m else daemon


@cache
def master_services() -> frozenset[str]:
    """``service/type`` of every entry of the shipped master.cf (what ``-o`` overrides may name)."""
    text = (Path(__file__).resolve().parents[1] / "mailnode" / "postfix" / "master.cf.j2").read_text()
    found = re.findall(r"^([a-z0-9][a-z0-9_.-]*)\s+(inet|unix|unix-dgram|fifo|pass)\s", text, re.M)
    return frozenset(f"{s}/{t}" for s, t in found)


def _denied(rules: list[tuple[str, str]], key: str) -> str | None:
    for pattern, why in rules:
        if re.fullmatch(pattern, key):
            return why
    return None


def value_problem(value: str, *, daemon: str, spaces: bool = True) -> tuple[str, str] | None:
    """Why this value cannot be written into a config file (message, hint), or None."""
    plain = "write the value as plain text on one line"
    if len(value) > MAX_VALUE:
        return f"the value is {len(value)} characters long (at most {MAX_VALUE})", plain
    if _CONTROL.search(value):
        return "the value holds a line break or another control character: a setting is one line", plain
    if "{" in value or "}" in value:
        return "the value holds a brace: braces open blocks and expressions in the daemon's config", plain
    if "$(" in value or "`" in value:
        return "the value holds '$(' or a backquote (command substitution)", plain
    if not spaces and re.search(r"\s", value):
        return (
            "a master.cf override cannot hold spaces (postconf -P refuses them)",
            "write a list with commas and no spaces: permit_sasl_authenticated,reject",
        )
    if daemon == "postfix":
        m = _TABLE_TYPES.search(value)
        if m:
            return (
                f"the value names a lookup table '{m.group(1)}:': {TABLE}",
                "use restrictions that need no table (reject_unauth_destination, permit_sasl_authenticated...)",
            )
        if re.search(r"\bcheck_policy_service\b", value):
            return f"the value uses check_policy_service: {OUTSIDE}", "remove check_policy_service"
    else:
        if value.lstrip().startswith("<"):
            return "a value starting with '<' makes Dovecot read a file (as root)", plain
        if "!include" in value or "$" in value:
            return "the value refers to another file or setting ('!include', '$name')", plain
    return None


def assert_safe(daemon: str, key: str, value: str, *, spaces: bool = True) -> None:
    """The services' last line of defence: refuse to write what validation would refuse."""
    if daemon == "postfix" and key.rpartition("/")[2] in MILTER_SETTINGS:
        if value.strip() not in _MILTER_VALUES:
            raise ValueError(f"refusing to write postfix setting {key!r}: only the lab's own milter")
        return
    bad = value_problem(value, daemon=daemon, spaces=spaces)
    if bad or not re.fullmatch(r"[a-z0-9][a-z0-9_/.-]{0,200}", key):
        raise ValueError(f"refusing to write {daemon} setting {key!r}: {bad[0] if bad else 'not a setting name'}")


@dataclass(frozen=True)
class Refusal:
    """One override the lab will not write, with where it is (the key) and why."""

    section: str  # postfix, postfix_master, dovecot
    key: str
    message: str
    hint: str | None = None


def check(section: str, settings: dict[str, str]) -> list[Refusal]:
    """Every problem of one section of a mail node's ``config:``."""
    from lab.model.schema import suggest

    out: list[Refusal] = []
    for key, value in settings.items():
        if section == "postfix_master":
            m = _SERVICE.fullmatch(key)
            if not m:
                out.append(
                    Refusal(
                        section,
                        key,
                        f"'{key}' is not service/type/parameter",
                        "e.g. submission/inet/smtpd_tls_security_level",
                    )
                )
                continue
            service, param = f"{m.group(1)}/{m.group(2)}", m.group(3)
            if service not in master_services():
                out.append(
                    Refusal(
                        section,
                        key,
                        f"master.cf has no service '{service}'",
                        suggest(service, master_services()) or "services: " + ", ".join(sorted(master_services())),
                    )
                )
                continue
            daemon = "postfix"
        else:
            daemon = "postfix" if section == "postfix" else "dovecot"
            param = key
        if not _NAME.fullmatch(param):
            out.append(
                Refusal(
                    section,
                    key,
                    f"'{param}' is not a setting name",
                    "a name of lower-case letters, digits and '_'; blocks are not accepted",
                )
            )
            continue
        if param not in known(daemon):
            out.append(
                Refusal(
                    section,
                    key,
                    f"'{param}' is not a {daemon_version(daemon)} setting",
                    suggest(param, known(daemon))
                    or f"see `{'postconf -d' if daemon == 'postfix' else 'doveconf -d'}` for the names",
                )
            )
            continue
        why = _denied(_POSTFIX_DENIED if daemon == "postfix" else _DOVECOT_DENIED, param)
        if why:
            out.append(
                Refusal(
                    section,
                    key,
                    f"'{param}' may not be changed: {why}",
                    "the lab's templates set it; change the settings that decide behaviour instead",
                )
            )
            continue
        if daemon == "postfix" and param in MILTER_SETTINGS:
            if value.strip() not in _MILTER_VALUES:
                out.append(
                    Refusal(
                        section,
                        key,
                        f"'{param}' may only be the lab's own rspamd ({LAB_MILTER}) or empty: {OUTSIDE}",
                        f"write '{param}: \"\"' to switch the filtering off, or '{LAB_MILTER}'",
                    )
                )
            continue
        bad = value_problem(value, daemon=daemon, spaces=section != "postfix_master")
        if bad:
            out.append(Refusal(section, key, *bad))
    return out


# --- what the overrides change ------------------------------------------------------------

#: The shipped value of every security-relevant setting (a unit test holds these against the
#: rendered templates, so they cannot drift).  Keys: "postfix:NAME", "submission/inet:NAME",
#: "submissions/inet:NAME", "dovecot:NAME".
REFERENCE: dict[str, str] = {
    "postfix:mynetworks": "127.0.0.0/8",
    "postfix:smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    "postfix:smtpd_recipient_restrictions": "reject_non_fqdn_recipient, reject_unlisted_recipient",
    "postfix:smtpd_sender_restrictions": "reject_non_fqdn_sender",
    "postfix:smtpd_reject_unlisted_recipient": "yes",
    "postfix:smtpd_tls_security_level": "may",
    "postfix:smtpd_tls_auth_only": "yes",
    "postfix:smtpd_sasl_auth_enable": "no",
    "postfix:smtpd_sasl_security_options": "noanonymous",
    "postfix:smtpd_sasl_tls_security_options": "noanonymous",
    "postfix:smtpd_tls_protocols": ">=TLSv1.2",
    "postfix:smtpd_tls_mandatory_protocols": ">=TLSv1.2",
    "postfix:smtp_tls_security_level": "may",
    "postfix:smtp_tls_protocols": ">=TLSv1.2",
    "postfix:smtp_tls_mandatory_protocols": ">=TLSv1.2",
    "postfix:smtpd_helo_required": "yes",
    "postfix:disable_vrfy_command": "yes",
    "postfix:smtpd_tls_ciphers": "medium",
    "postfix:smtpd_tls_mandatory_ciphers": "high",
    "postfix:tls_high_cipherlist": ":".join(INTERMEDIATE_TLS12),
    "postfix:smtpd_milters": LAB_MILTER,
    "postfix:non_smtpd_milters": "$smtpd_milters",
    "postfix:milter_default_action": "tempfail",
    "submission/inet:smtpd_tls_security_level": "encrypt",
    "submission/inet:smtpd_tls_auth_only": "yes",
    "submission/inet:smtpd_sasl_auth_enable": "yes",
    "submission/inet:smtpd_relay_restrictions": "permit_sasl_authenticated,reject",
    "submission/inet:smtpd_sender_restrictions": "reject_non_fqdn_sender,reject_sender_login_mismatch,reject_unlisted_sender",
    "submission/inet:smtpd_recipient_restrictions": "reject_non_fqdn_recipient,reject_unlisted_recipient",
    "submissions/inet:smtpd_tls_wrappermode": "yes",
    "submissions/inet:smtpd_tls_security_level": "encrypt",
    "submissions/inet:smtpd_tls_auth_only": "yes",
    "submissions/inet:smtpd_relay_restrictions": "permit_sasl_authenticated,reject",
    "submissions/inet:smtpd_sender_restrictions": "reject_non_fqdn_sender,reject_sender_login_mismatch,reject_unlisted_sender",
    "submissions/inet:smtpd_recipient_restrictions": "reject_non_fqdn_recipient,reject_unlisted_recipient",
    "dovecot:ssl": "required",
    "dovecot:disable_plaintext_auth": "yes",
    "dovecot:auth_mechanisms": "plain login",
    "dovecot:ssl_min_protocol": "TLSv1.2",
    "dovecot:auth_failure_delay": "2 secs",
    "dovecot:auth_verbose_passwords": "no",
    "dovecot:auth_debug_passwords": "no",
    "dovecot:login_trusted_networks": "",
    "dovecot:ssl_cipher_list": ":".join(INTERMEDIATE_TLS12),
    "dovecot:ssl_prefer_server_ciphers": "no",
}

#: what each security-relevant setting protects (shown next to a changed value)
PROTECTS: dict[str, str] = {
    "mynetworks": "which clients may relay without logging in (open relay)",
    "smtpd_relay_restrictions": "who may relay mail to other domains (open relay)",
    "smtpd_recipient_restrictions": "which recipients are accepted",
    "smtpd_sender_restrictions": "which senders a client may use (spoofing)",
    "smtpd_reject_unlisted_recipient": "unknown recipients refused at RCPT time (backscatter)",
    "smtpd_tls_security_level": "TLS for clients (none, may, encrypt)",
    "smtpd_tls_auth_only": "no AUTH before TLS (passwords in clear)",
    "smtpd_sasl_auth_enable": "where clients may log in",
    "smtpd_sasl_security_options": "which login mechanisms are offered",
    "smtpd_sasl_tls_security_options": "which login mechanisms are offered over TLS",
    "smtpd_tls_protocols": "the TLS versions offered",
    "smtpd_tls_mandatory_protocols": "the TLS versions required where TLS is mandatory",
    "smtp_tls_security_level": "TLS when relaying to other servers",
    "smtp_tls_protocols": "the TLS versions used when relaying",
    "smtp_tls_mandatory_protocols": "the TLS versions required when relaying",
    "smtpd_helo_required": "clients must say HELO/EHLO",
    "disable_vrfy_command": "VRFY (address harvesting)",
    "smtpd_tls_ciphers": "the cipher suites offered",
    "smtpd_tls_mandatory_ciphers": "the cipher suites required",
    "smtpd_tls_wrappermode": "implicit TLS on port 465",
    "ssl": "TLS for IMAP and POP3 (no, yes, required)",
    "disable_plaintext_auth": "no login before TLS (passwords in clear)",
    "auth_mechanisms": "which login mechanisms are offered",
    "ssl_min_protocol": "the lowest TLS version accepted",
    "auth_failure_delay": "the pause after a failed login (password guessing)",
    "auth_verbose_passwords": "passwords written to the log",
    "auth_debug_passwords": "passwords written to the log",
    "login_trusted_networks": "networks allowed to log in without TLS",
    "ssl_cipher_list": "the cipher suites offered",
    "tls_high_cipherlist": "the cipher suites where TLS is required (587, 465)",
    "smtpd_milters": "SPF, DKIM and DMARC checks, spam and virus filtering (rspamd)",
    "non_smtpd_milters": "DKIM signing of locally submitted mail",
    "milter_default_action": "what happens to mail when the filter does not answer",
}

_LEVEL = {"none": 0, "may": 1, "encrypt": 2, "dane": 2, "dane-only": 3, "fingerprint": 3, "verify": 3, "secure": 3}
_SSL = {"no": 0, "yes": 1, "required": 2}
_TLS = {"SSLv2": 0, "SSLv3": 1, "TLSv1": 2, "TLSv1.1": 3, "TLSv1.2": 4, "TLSv1.3": 5}
_CIPHERS = {"null": 0, "export": 1, "low": 2, "medium": 3, "high": 4}


def _yes(v: str) -> bool:
    return v.strip().lower() in ("yes", "true", "1")


def _words(v: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", v.strip()) if w]


def _min_tls(v: str) -> int:
    """The lowest TLS version a Postfix protocols value allows (``>=TLSv1.2`` or ``!SSLv3, !TLSv1``)."""
    v = v.strip()
    m = re.search(r">=\s*(\S+)", v)
    if m:
        return _TLS.get(m.group(1), 0)
    excluded = {w.lstrip("!") for w in _words(v) if w.startswith("!")}
    named = [w for w in _words(v) if not w.startswith("!")]
    allowed = [r for name, r in _TLS.items() if (name in named if named else name not in excluded)]
    return min(allowed) if allowed else 5


def _mynetworks_wide(v: str) -> bool:
    loopback = ipaddress.ip_network("127.0.0.0/8")
    for w in _words(v):
        try:
            net = ipaddress.ip_network(w.strip("[]"), strict=False)
        except ValueError:
            return True  # $names and other forms: cannot tell, so say so
        if net.version != 4 or not net.subnet_of(loopback):  # type: ignore[arg-type]
            return True
    return False


def _seconds(v: str) -> float:
    m = re.match(r"\s*(\d+(?:\.\d+)?)\s*(ms|msecs?|s|secs?|m|mins?)?", v)
    if not m:
        return 0.0
    n = float(m.group(1))
    unit = m.group(2) or "s"
    return n / 1000 if unit.startswith("ms") else n * 60 if unit.startswith("m") else n


_WEAKER: dict[str, Callable[[str, str], bool]] = {
    "mynetworks": lambda v, ref: _mynetworks_wide(v),
    "smtpd_relay_restrictions": lambda v, ref: not ({"reject_unauth_destination", "reject"} & set(_words(v))),
    "smtpd_recipient_restrictions": lambda v, ref: (
        _words(v)[:1] in (["permit"], ["permit_mynetworks"]) or "reject_unlisted_recipient" not in _words(v)
    ),
    "smtpd_sender_restrictions": lambda v, ref: bool(set(_words(ref)) - set(_words(v))),
    "smtpd_reject_unlisted_recipient": lambda v, ref: not _yes(v),
    "smtpd_tls_security_level": lambda v, ref: _LEVEL.get(v.strip(), 0) < _LEVEL.get(ref, 0),
    "smtp_tls_security_level": lambda v, ref: _LEVEL.get(v.strip(), 0) < _LEVEL.get(ref, 0),
    "smtpd_tls_auth_only": lambda v, ref: not _yes(v),
    "smtpd_sasl_auth_enable": lambda v, ref: _yes(v) and not _yes(ref),
    "smtpd_sasl_security_options": lambda v, ref: "noanonymous" not in _words(v),
    "smtpd_sasl_tls_security_options": lambda v, ref: "noanonymous" not in _words(v),
    "smtpd_tls_protocols": lambda v, ref: _min_tls(v) < _min_tls(ref),
    "smtpd_tls_mandatory_protocols": lambda v, ref: _min_tls(v) < _min_tls(ref),
    "smtp_tls_protocols": lambda v, ref: _min_tls(v) < _min_tls(ref),
    "smtp_tls_mandatory_protocols": lambda v, ref: _min_tls(v) < _min_tls(ref),
    "smtpd_helo_required": lambda v, ref: not _yes(v),
    "disable_vrfy_command": lambda v, ref: not _yes(v),
    "smtpd_tls_ciphers": lambda v, ref: _CIPHERS.get(v.strip().lower(), 0) < _CIPHERS.get(ref, 0),
    "smtpd_tls_mandatory_ciphers": lambda v, ref: _CIPHERS.get(v.strip().lower(), 0) < _CIPHERS.get(ref, 0),
    "smtpd_tls_wrappermode": lambda v, ref: not _yes(v),
    "ssl": lambda v, ref: _SSL.get(v.strip().lower(), 0) < _SSL.get(ref, 0),
    "disable_plaintext_auth": lambda v, ref: not _yes(v),
    "auth_mechanisms": lambda v, ref: "anonymous" in v.lower(),
    "ssl_min_protocol": lambda v, ref: _TLS.get(v.strip(), 0) < _TLS.get(ref, 0),
    "auth_failure_delay": lambda v, ref: _seconds(v) < _seconds(ref),
    "auth_verbose_passwords": lambda v, ref: v.strip().lower() not in ("no", ""),
    "auth_debug_passwords": lambda v, ref: _yes(v),
    "login_trusted_networks": lambda v, ref: bool(v.strip()),
    "ssl_cipher_list": lambda v, ref: _weak_ciphers(v),
    "tls_high_cipherlist": lambda v, ref: _weak_ciphers(v),
    "smtpd_milters": lambda v, ref: not v.strip(),
    "non_smtpd_milters": lambda v, ref: not v.strip(),
    "milter_default_action": lambda v, ref: v.strip() == "accept",
}


def _weak_ciphers(v: str) -> bool:
    """A cipher list that names a weak class (aNULL, RC4...), or a suite the intermediate
    profile does not have (a CBC suite, say)."""
    if re.search(r"(?<![!\-])\b(aNULL|eNULL|NULL|EXPORT|RC4|DES|3DES|LOW|ALL|DEFAULT|MEDIUM)\b", v):
        return True
    return any(w and not w.startswith(("!", "-", "+", "@")) and weakness("TLSv1.2", w) for w in re.split(r"[:\s,]+", v))


@dataclass(frozen=True)
class Override:
    """One changed setting of a mail node, next to what the shipped server has."""

    node: str
    daemon: str  # "postfix", "postfix master.cf submission/inet", "dovecot"
    setting: str
    value: str
    reference: str | None  # the shipped value; None when the shipped config leaves the default
    protects: str | None  # what the setting protects, when it is security-relevant
    weakens: bool

    def line(self) -> str:
        was = f" (shipped: {self.reference!r})" if self.reference is not None else " (shipped: the default)"
        flag = "WEAKENS SECURITY: " if self.weakens else ""
        what = f" [{self.protects}]" if self.protects else ""
        return f"{flag}{self.node}: {self.daemon} {self.setting} = {self.value!r}{was}{what}"


def overrides(node: str, sections: dict[str, dict[str, str]]) -> list[Override]:
    """Every override of one mail node, with the reference value and whether it weakens security."""
    out = []
    for section, settings in sections.items():
        for key, value in settings.items():
            if section == "postfix_master":
                service, _, param = key.rpartition("/")
                daemon, ref_key = f"postfix master.cf {service}", f"{service}:{param}"
                ref = REFERENCE.get(ref_key, REFERENCE.get(f"postfix:{param}"))
            else:
                param = key
                daemon = "postfix" if section == "postfix" else "dovecot"
                ref = REFERENCE.get(f"{daemon}:{param}")
            rule = _WEAKER.get(param)
            weak = bool(rule and rule(value, ref if ref is not None else ""))
            out.append(Override(node, daemon, param, value, ref, PROTECTS.get(param), weak))
    return out


def overrides_of(t: Any) -> list[Override]:
    """Every mail node override of a topology file (a ``TopologyFile``)."""
    out: list[Override] = []
    for name, node in t.nodes.items():
        if node.config is not None:
            out.extend(overrides(name, node.config.sections()))
    return out
