"""Renderers: summary.json and junit.xml (one test case per step)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import cast

from lab.report.results import ERROR, FAILED, SKIPPED, RunResult


def write_json(result: RunResult, path: Path) -> Path:
    path.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=False, default=str) + "\n")
    return path


def write_junit(result: RunResult, path: Path) -> Path:
    counts = result.counts
    suite = ET.Element(
        "testsuite",
        name=f"mail-lab.{result.scenario}",
        tests=str(len(result.steps)),
        failures=str(counts[FAILED]),
        errors=str(counts[ERROR] + (1 if result.error else 0)),
        skipped=str(counts[SKIPPED]),
        time=f"{result.duration:.3f}",
        timestamp=result.started,
    )
    props = ET.SubElement(suite, "properties")
    for k, v in {"run_id": result.run_id, "topology": result.topology, **result.environment}.items():
        ET.SubElement(props, "property", name=k, value=str(v))
    if result.error:
        case = ET.SubElement(suite, "testcase", classname=f"{result.scenario}.lab", name="build and deploy")
        ET.SubElement(case, "error", message=result.error.splitlines()[0]).text = result.error
    for s in result.steps:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{result.scenario}.{s.kind}",
            name=f"{s.index:02d} {s.name}",
            time=f"{s.duration:.3f}",
        )
        if s.status == FAILED:
            ET.SubElement(case, "failure", message=s.message).text = json.dumps(s.details, indent=2, default=str)
        elif s.status == ERROR:
            ET.SubElement(case, "error", message=s.message).text = json.dumps(s.details, indent=2, default=str)
        elif s.status == SKIPPED:
            ET.SubElement(case, "skipped", message=s.message)
    tree = ET.ElementTree(ET.Element("testsuites"))
    cast(ET.Element, tree.getroot()).append(suite)  # the root passed to ElementTree() above
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_text(result: RunResult) -> str:
    lines = []
    for s in result.steps:
        mark = {"passed": "PASS", "failed": "FAIL", "error": "ERR ", "skipped": "SKIP"}[s.status]
        lines.append(
            f"  {mark} {s.index:02d} {s.name} ({s.duration:.2f} s)"
            + (f"\n       {s.message}" if s.message and s.status != "passed" else "")
        )
    return "\n".join(lines)
