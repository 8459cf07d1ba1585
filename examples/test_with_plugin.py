"""An example of the mail-lab pytest plugin: a lab per module, steps as calls.

Run it (as root):  .venv/bin/pytest examples/test_with_plugin.py
Scenario files as tests:  .venv/bin/pytest --lab-scenarios scenarios/star.yaml
"""
import pytest

pytestmark = pytest.mark.lab_topology("topologies/star.yaml")


def test_students_resolve_the_mail_domain(lab):
    out = lab.step("dns", on="pc1", query="projet.dz", type="MX")
    assert out.status == "passed"
    assert out.details["answers"] == ["10 mail.projet.dz."]


def test_submission_needs_starttls_before_auth(lab):
    out = lab.step("send", on="pc1", server="mail.projet.dz", login="alice@projet.dz", to=["bob@projet.dz"])
    assert out.status == "passed", out.message
    assert "auth" not in out.details["ehlo_before_tls"]
    assert out.details["tls_version"] == "TLSv1.3"


def test_a_node_runs_commands(lab):
    r = lab.node("pc2").run(["ip", "-4", "route", "show", "default"])
    assert "via 10.0.0.1" in r.stdout
