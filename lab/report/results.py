"""The result of one run, as plain data every renderer reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BASE = "https://mail-lab.invalid/schema"

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"


@dataclass
class StepResult:
    index: int
    kind: str
    name: str
    status: str = PASSED
    duration: float = 0.0
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


@dataclass
class RunResult:
    run_id: str
    scenario: str
    scenario_file: str
    topology: str
    topology_file: str
    started: str
    prefix: str = ""
    status: str = PASSED
    duration: float = 0.0
    error: str = ""
    steps: list[StepResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    leases: list[dict[str, str]] = field(default_factory=list)
    dns_records: list[dict[str, str]] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    artefacts: list[dict[str, str]] = field(default_factory=list)
    captures: list[dict[str, Any]] = field(default_factory=list)
    accounting: list[dict[str, Any]] = field(default_factory=list)
    firewalls: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: mail node settings the topology changes, against the shipped server (``weakens`` flags)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    wire: dict[str, Any] = field(default_factory=dict)
    #: each delayed or lossy link end: what was asked, by which mechanism, what the helper measured
    impairments: list[dict[str, Any]] = field(default_factory=list)
    teardown: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        out = {PASSED: 0, FAILED: 0, ERROR: 0, SKIPPED: 0}
        for s in self.steps:
            out[s.status] = out.get(s.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = self.counts
        d["schema"] = "mail-lab/summary/v1"
        return d


def summary_schema() -> dict[str, Any]:
    """The JSON Schema of summary.json (``mail-lab/summary/v1``)."""
    from pydantic import TypeAdapter

    sch = TypeAdapter(RunResult).json_schema()
    sch["properties"]["counts"] = {"type": "object", "additionalProperties": {"type": "integer"}}
    sch["properties"]["schema"] = {"const": "mail-lab/summary/v1"}
    sch["required"] = sorted(set(sch.get("required", [])) | {"counts", "schema", "status", "steps"})
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{BASE}/summary.schema.json", **sch}
