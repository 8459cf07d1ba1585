"""The published JSON Schemas match the model and accept what the project ships."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from lab.model import jsonschema as model_schema
from lab.model.yamlload import load_file
from lab.report.results import summary_schema


def schema(kind: str) -> dict:
    return summary_schema() if kind == "summary" else model_schema.schema(kind)


REPO = Path(__file__).resolve().parents[2]
KINDS = ("topology", "scenario", "summary")


@pytest.mark.parametrize("kind", KINDS)
def test_committed_schema_is_the_generated_one(kind: str) -> None:
    committed = json.loads((REPO / "schema" / f"{kind}.schema.json").read_text())
    assert committed == schema(kind), f"run: lab schema {kind} > schema/{kind}.schema.json"


@pytest.mark.parametrize("path", sorted((REPO / "topologies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_topologies_validate(path: Path) -> None:
    jsonschema.validate(load_file(path).data, schema("topology"))


@pytest.mark.parametrize("path", sorted((REPO / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_validate(path: Path) -> None:
    jsonschema.validate(load_file(path).data, schema("scenario"))


@pytest.mark.parametrize(
    "path", sorted((REPO / "tests" / "data" / "report").glob("*/summary.json")), ids=lambda p: p.parent.name
)
def test_real_summaries_validate(path: Path) -> None:
    jsonschema.validate(json.loads(path.read_text()), schema("summary"))


def test_the_schema_rejects_a_typo() -> None:
    bad = {"topology": "x.yaml", "steps": [{"sned": {"on": "pc1"}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema("scenario"))
    bad_topo = load_file(REPO / "topologies" / "star.yaml").data
    bad_topo["nodes"]["pc1"]["adress"] = "10.0.0.5"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_topo, schema("topology"))
