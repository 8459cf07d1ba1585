"""JSON Schemas of the input files, generated from the model, for editors and CI.

Topology: the pydantic model as is.  Scenario: steps are one-key mappings
(``- send: {...}``), so each action's model is wrapped in an object with that one
key.  (The report's ``summary.json`` has its schema in ``lab.report.results``.)
"""

from __future__ import annotations

from typing import Any

from lab.model import scenario as S
from lab.model.topology import TopologyFile

BASE = "https://mail-lab.invalid/schema"


def _topology() -> dict[str, Any]:
    sch = TopologyFile.model_json_schema(by_alias=True)
    sch["properties"]["generate"] = {
        "type": "object",
        "description": "generate nodes and links: {tree: {depth, fanout, hosts}}",
    }
    return sch


def _scenario() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    variants = []
    for kind, model in S.ACTIONS.items():
        sub = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[model.__name__] = sub
        variants.append(
            {
                "type": "object",
                "additionalProperties": False,
                "required": [kind],
                "properties": {"name": {"type": "string"}, kind: {"$ref": f"#/$defs/{model.__name__}"}},
            }
        )
    wire = S.Wire.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs.update(wire.pop("$defs", {}))
    defs["Wire"] = wire
    return {
        "title": "mail-lab scenario",
        "type": "object",
        "additionalProperties": False,
        "required": ["topology", "steps"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "topology": {"type": "string", "description": "path to a topology file, relative to this file"},
            "routing": {"enum": ["static", "ospf", "rip"], "description": "replaces the topology's routing mode"},
            "params": {"type": "object", "additionalProperties": {"type": "integer"}},
            "capture": {"type": "boolean", "default": True},
            "wire": {"$ref": "#/$defs/Wire"},
            "steps": {"type": "array", "minItems": 1, "items": {"oneOf": variants}},
        },
        "$defs": defs,
    }


def schema(kind: str) -> dict[str, Any]:
    body = {"topology": _topology, "scenario": _scenario}[kind]()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{BASE}/{kind}.schema.json", **body}
