"""Proxies, web servers, tunnels and delays as data: validation of the new topology keys
(hostile values are refused with a located error, never written into a config), the
configs the services render from them, and the delay helper's rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lab.errors import InputError
from lab.model.load import load_topology
from lab.model.plan import make_plan
from lab.runtime.node import LabNode
from lab.services.base import Deployment
from lab.services.delay import queues_for, rules
from lab.services.web import Nginx, Squid

REPO = Path(__file__).resolve().parents[2]
#: the templates this module renders (test_templates checks every template is covered)
COVERED = {
    "templates/squid.conf.j2",
    "templates/nginx.conf.j2",
    "templates/site.html.j2",
    "templates/openvpn.conf.j2",
}


def plan_of(name: str):
    return make_plan(load_topology(REPO / "topologies" / name))


def rendered(plan, cls, node: str) -> dict[str, str]:
    ln = LabNode(plan.nodes[node], None, Path("/var/lib/mail-lab/runs/x/nodes") / node, "ml0")
    dep = Deployment(plan, None, None, {node: ln})  # type: ignore[arg-type]
    return {t.path.name: t.text() for t in cls.from_plan(ln, dep).templates()}


def test_squid_config_says_what_the_topology_says() -> None:
    conf = rendered(plan_of("proxy.yaml"), Squid, "proxy")["squid.conf"]
    assert "http_port 10.0.1.3:3128" in conf
    assert re.search(r"^acl lab_clients src 10\.0\.0\.0/24$", conf, re.M)
    assert re.search(r"^acl lab_denied dstdomain games\.partenaire\.dz$", conf, re.M)
    assert re.search(r"^acl lab_ports port 80 443$", conf, re.M)
    # refusals come before the allow, and everything else is denied
    order = [ln for ln in conf.splitlines() if ln.startswith("http_access")]
    assert order[-2:] == ["http_access allow lab_clients", "http_access deny all"]
    assert order.index("http_access deny lab_denied") < order.index("http_access allow lab_clients")
    assert "dns_nameservers 10.0.1.2" in conf and "cache deny all" in conf
    # every path in the node's own folder
    paths = re.findall(r"(?<![\w.])(/[a-z]\S*)", conf)
    assert all(p.startswith("/var/lib/mail-lab/runs/x/nodes/proxy/") or p == "/etc/hosts" for p in paths), paths


def test_nginx_serves_every_name_of_its_node() -> None:
    files = rendered(plan_of("proxy.yaml"), Nginx, "web")
    conf = files["nginx.conf"]
    names = re.findall(r"server_name (\S+);", conf)
    assert names == ["web.partenaire.dz", "www.partenaire.dz", "games.partenaire.dz"]
    assert "listen 198.51.100.80:443 ssl default_server;" in conf
    assert "daemon off;" in conf and "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    assert "www.partenaire.dz" in files["index.html"] or any("www.partenaire.dz" in v for v in files.values())


def test_aliases_get_address_records() -> None:
    plan = plan_of("proxy.yaml")
    zone = next(z for z in plan.zones if z.name == "partenaire.dz")
    a = {(r.owner, r.value) for r in zone.records if r.type == "A"}
    assert {("www", "198.51.100.80"), ("games", "198.51.100.80"), ("web", "198.51.100.80")} <= a


HOSTILE = [
    ("deny: ['games.partenaire.dz\\nhttp_access allow all']", "proxies.proxy.deny.0", "not a host or domain name"),
    ("deny: ['all']", None, None),  # a plain name is a name: it only ever matches a host called 'all'
    ("deny: ['x y']", "proxies.proxy.deny.0", "not a host or domain name"),
    ("ports: ['80; rm -rf /']", "proxies.proxy.ports.0", None),
    ("clients: [nowhere]", "proxies.proxy.clients[0]", "unknown subnet 'nowhere'"),
    ("port: 0", "proxies.proxy.port", None),
]


def _proxy_with(tmp_path: Path, line: str) -> Path:
    text = (REPO / "topologies" / "proxy.yaml").read_text()
    key = line.split(":", 1)[0]
    text = re.sub(rf"^    {key}: .*$", f"    {line}", text, flags=re.M)
    if f"    {key}:" not in text:
        text = text.replace("    clients: [lan]", f"    clients: [lan]\n    {line}", 1)
    p = tmp_path / "t.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(("line", "field", "message"), HOSTILE)
def test_hostile_proxy_values_are_refused_where_they_stand(tmp_path: Path, line: str, field, message) -> None:
    path = _proxy_with(tmp_path, line)
    if field is None:
        load_topology(path)
        return
    with pytest.raises(InputError) as info:
        load_topology(path)
    text = str(info.value)
    assert re.search(rf"t\.yaml:\d+:\d+: {re.escape(field)}", text) or field.split(".")[-1] in text, text
    if message:
        assert message in text, text


def test_alias_cannot_carry_text_into_a_zone(tmp_path: Path) -> None:
    text = (
        (REPO / "topologies" / "proxy.yaml")
        .read_text()
        .replace("aliases: [www, games]", 'aliases: ["www\\n@ IN NS evil."]')
    )
    p = tmp_path / "t.yaml"
    p.write_text(text)
    with pytest.raises(InputError, match="not a DNS label"):
        load_topology(p)


def test_delay_rules_name_only_the_plans_interfaces() -> None:
    plan = plan_of("wan.yaml")
    qs = queues_for("pc-lan", plan)
    assert [(q.iface, q.direction, q.delay_ms) for q in qs] == [("eth0", "out", 3.0), ("eth0", "in", 3.0)]
    text = rules(qs)
    assert "-A LABDELAY-OUT -o eth0" in text and "-A LABDELAY-IN -i eth0" in text
    assert text.count("--queue-bypass") == 2  # a dead helper never blocks traffic
    undo = rules(qs, "-D")
    assert "-D POSTROUTING -j LABDELAY-OUT" in undo and "-X LABDELAY-IN" in undo
    # a router delays only its egress on a link to another node
    assert [(q.iface, q.direction) for q in queues_for("ra", plan)] == [("eth0", "out"), ("eth1", "out")]


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("{a: pc-man, b: sb, jitter: 2ms}", "a jitter needs a delay"),
        ("{a: pc-man, b: sb, delay: 1ms, jitter: 2ms}", "larger than the delay"),
        ("{a: pc-man, b: sb, delay: '5ms; reboot'}", "is not a delay"),
    ],
)
def test_bad_delays_are_refused(tmp_path: Path, link: str, message: str) -> None:
    text = (REPO / "topologies" / "wan.yaml").read_text().replace("  - {a: pc-man, b: sb}", f"  - {link}")
    p = tmp_path / "t.yaml"
    p.write_text(text)
    with pytest.raises(InputError, match=message):
        load_topology(p)


def test_the_helper_config_is_plain_numbers(tmp_path: Path) -> None:
    from lab.services.delay import DelayQueue

    plan = plan_of("wan.yaml")
    ln = LabNode(plan.nodes["ra"], None, tmp_path, "ml0")
    svc = DelayQueue.from_plan(ln, Deployment(plan, None, None, {"ra": ln}))  # type: ignore[arg-type]
    conf = svc.config()
    json.dumps(conf)
    assert [q["delay_ms"] for q in conf["queues"]] == [10.0, 40.0]


def test_openvpn_ends_of_both_kinds() -> None:
    from lab.services.openvpn import OpenVpn

    plan = plan_of("multisite-vpn.yaml")
    ra = "\n".join(rendered(plan, OpenVpn, "ra").values())
    assert "tls-server" in ra and "ifconfig 10.8.0.1 10.8.0.2" in ra and "route 10.30.1.0 255.255.255.0" in ra
    assert "server 10.8.1.0 255.255.255.0" in ra and 'push "route 10.20.1.0 255.255.255.0"' in ra
    student = "\n".join(rendered(plan, OpenVpn, "student").values())
    assert "client" in student.split() and "remote 203.0.113.2 1195" in student
    assert "verify-x509-name ra.projet.dz name" in student and "remote-cert-tls server" in student
    # the kill switch: what an end reaches through a tunnel is unreachable without it
    assert plan.nodes["student"].unreachable == ["10.20.1.0/24"] and plan.nodes["ra"].tunnels == ["vpn0", "vpn1"]
