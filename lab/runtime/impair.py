"""Link impairments: bandwidth, loss, delay and jitter, honoured or refused, never silently dropped.

Bandwidth is HTB (Mininet's TCLink).  Loss, delay and jitter use ``tc netem`` where the
kernel has it (a user's laptop).  This machine's kernel has no netem (nor fq or etf), so:

- loss falls back to an nftables random drop inside the node at each end of the link;
- delay and jitter fall back to the NFQUEUE delay helper (``lab.runtime.nfqdelay``, run
  by ``lab.services.delay.DelayQueue`` inside each node at an end of the link): the
  kernel queues every packet leaving (and, on a link to a switch, entering) that
  interface to the helper, which lets it go when its time has come;
- where neither exists (no netem, and no NFQUEUE target or no NetfilterQueue module) a
  delay is refused before anything is built, unless the link says
  ``delay_optional: true`` (the run then records that it was not applied).

``delay_mechanism()`` says which one this machine uses; the run's notes and the
report's "Link impairments" section say it for every link.
"""

from __future__ import annotations

import functools
import subprocess

from lab.errors import InputError
from lab.model.plan import Impairment, Plan, impairments
from lab.runtime.node import LabNode


@functools.lru_cache(maxsize=1)
def netem_available() -> bool:
    """Try netem on the loopback of a throwaway network namespace."""
    try:
        r = subprocess.run(
            ["unshare", "-n", "sh", "-c", "ip link set lo up && tc qdisc add dev lo root netem delay 1ms"],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@functools.lru_cache(maxsize=1)
def nfqueue_available() -> str | None:
    """None when the NFQUEUE delay helper can work here, else why not.

    It needs the NetfilterQueue module (PyPI, built against libnetfilter-queue) and an
    iptables whose NFQUEUE target the kernel accepts, tried in a throwaway namespace.
    """
    try:
        import netfilterqueue  # noqa: F401
    except ImportError as exc:
        return f"the NetfilterQueue module does not import ({exc}): run scripts/setup.sh"
    rule = "iptables -t mangle -A OUTPUT -o lo -j NFQUEUE --queue-num 0 --queue-bypass"
    try:
        r = subprocess.run(
            ["unshare", "-n", "sh", "-c", rule],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot try the NFQUEUE target: {exc}"
    if r.returncode != 0:
        return f"the kernel refused an NFQUEUE rule: {(r.stderr or r.stdout).strip()[:200]}"
    return None


def delay_mechanism() -> str | None:
    """How this machine delays packets: ``"tc netem"``, ``"nfqueue"`` or None (it cannot)."""
    if netem_available():
        return "tc netem"
    return "nfqueue" if nfqueue_available() is None else None


def mechanism_text(mechanism: str | None) -> str:
    return {
        "tc netem": "tc netem",
        "nfqueue": "the NFQUEUE delay helper (no tc netem in this kernel)",
        None: "nothing",
    }[mechanism]


def check_supported(plan: Plan) -> list[str]:
    """Refuse delays this machine cannot apply; return notes saying how each is applied."""
    notes: list[str] = []
    problems = []
    netem = netem_available()
    delays = [imp for imp in impairments(plan) if imp.delay]
    mechanism = delay_mechanism() if delays else None
    src = plan.topology.src
    for imp in delays:
        what = f"delay {imp.delay}" + (f" jitter {imp.jitter}" if imp.jitter else "")
        where = f"{imp.node}:{imp.iface} ({'egress' if imp.direction == 'out' else 'egress and ingress'})"
        if mechanism is not None:
            notes.append(f"links[{imp.link}]: {what} on {where} by {mechanism_text(mechanism)}")
        elif imp.delay_optional:
            notes.append(
                f"links[{imp.link}]: {what} NOT applied on {imp.node}:{imp.iface} "
                f"(no tc netem, and {nfqueue_available()}; the link is marked delay_optional)"
            )
        else:
            problems.append(
                src.problem(
                    ("links", imp.link, "delay"),
                    f"a delay of {imp.delay} cannot be applied: this kernel has no tc netem, "
                    f"and the NFQUEUE helper cannot run ({nfqueue_available()})",
                    "run scripts/setup.sh (it installs the helper's module), use a kernel with "
                    "sch_netem, or set delay_optional: true to build without it",
                )
            )
        if imp.loss and not netem:
            notes.append(
                f"links[{imp.link}]: loss {imp.loss:g}% on {imp.node}:{imp.iface} ({imp.direction}) "
                "by nftables random drop (no tc netem in this kernel)"
            )
    if problems:
        # keep one problem per link (both ends report the same delay)
        seen, unique = set(), []
        for p in problems:
            if p.field not in seen:
                seen.add(p.field)
                unique.append(p)
        raise InputError(problems=unique)
    return notes


def loss_ruleset(rules: list[Impairment]) -> str:
    """An nftables table dropping a random share of packets on the given interfaces."""
    lines = ["table inet labloss", "delete table inet labloss", "table inet labloss {"]
    out_rules, in_rules = [], []
    for imp in rules:
        assert imp.loss is not None
        if imp.loss >= 100:
            cond = ""
        else:
            cond = f"numgen random mod 10000 < {int(round(imp.loss * 100))} "
        if imp.direction in ("out", "both"):
            out_rules.append(f'\t\toifname "{imp.iface}" {cond}counter drop comment "loss {imp.loss:g}% out"')
        if imp.direction in ("in", "both"):
            in_rules.append(f'\t\tiifname "{imp.iface}" {cond}counter drop comment "loss {imp.loss:g}% in"')
    lines += [
        "\tchain out {",
        "\t\ttype filter hook postrouting priority filter + 10; policy accept;",
        *out_rules,
        "\t}",
        "\tchain in {",
        "\t\ttype filter hook prerouting priority raw - 10; policy accept;",
        *in_rules,
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def apply_loss(nodes: dict[str, LabNode], plan: Plan) -> dict[str, str]:
    """Load the loss tables (only where netem is missing).  Returns node -> ruleset."""
    if netem_available():
        return {}
    per_node: dict[str, list[Impairment]] = {}
    for imp in impairments(plan):
        if imp.loss:
            per_node.setdefault(imp.node, []).append(imp)
    out = {}
    for name, rules in per_node.items():
        text = loss_ruleset(rules)
        node = nodes[name]
        path = node.dir / "loss.nft"
        path.write_text(text)
        r = node.run(["nft", "-f", str(path)])
        if r.returncode != 0:
            from lab.errors import BuildError

            raise BuildError(f"{name}: could not load the loss rules: {r.stderr.strip()}")
        out[name] = text
    return out


def set_loss(node: LabNode, iface: str, link: int, loss: float, direction: str) -> tuple[str, int | None]:
    """Change the loss on one interface of a running node (netem, or the nftables table).

    Returns how it was applied and how many packets the previous nftables rule had dropped.
    """
    if netem_available():
        args = (
            ["tc", "qdisc", "replace", "dev", iface, "root", "netem", "loss", f"{loss}%"]
            if loss
            else ["tc", "qdisc", "del", "dev", iface, "root"]
        )
        node.run(args)
        return "tc netem", None
    dropped = loss_counter(node)
    imp = Impairment(node.name, iface, link, loss, None, False, direction)
    text = loss_ruleset([imp]) if loss else "table inet labloss\ndelete table inet labloss\n"
    r = node.run(["nft", "-f", "-"], input=text)
    if r.returncode:
        from lab.errors import BuildError

        raise BuildError(f"{node.name}: nft refused the loss rule: {r.stderr.strip()}")
    return "nftables random drop (no netem in this kernel)", dropped


def loss_counter(node: LabNode) -> int | None:
    """Packets dropped so far by the node's loss table (None when it has none)."""
    import json

    r = node.run(["nft", "-j", "list", "table", "inet", "labloss"])
    if r.returncode:
        return None
    total = 0
    for item in json.loads(r.stdout).get("nftables", []):
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                total += int(expr["counter"].get("packets", 0))
    return total
