"""mail-lab as a pytest plugin (registered through the ``pytest11`` entry point).

Two ways to use it:

1. Fixtures, in your own test files::

       import pytest
       pytestmark = pytest.mark.lab_topology("topologies/star.yaml")

       def test_mx(lab):
           out = lab.step("dns", on="pc1", query="projet.dz", type="MX")
           assert out.details["answers"] == ["10 mail.projet.dz."]

       def test_ping(lab):
           assert lab.node("pc1").run(["ping", "-c1", "mail"]).returncode == 0

   ``lab`` is built once per module (from the ``lab_topology`` marker, or the
   ``--lab-topology`` option) and torn down after its last test.

2. Scenario files as tests: ``pytest --lab-scenarios scenarios/star.yaml`` (or a
   folder) collects every scenario file given, builds its lab once, and runs each
   step and each wire assertion as its own test item, so each is a visible result.

Building labs needs root; without it the tests are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from lab.errors import LabError

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr  # what Node.repr_failure returns besides str

    from lab.deploy.lab import Lab


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mail-lab")
    group.addoption(
        "--lab-topology",
        default=None,
        help="topology for the 'lab' fixture (else the lab_topology marker); with --lab-scenarios, the topology "
        "every scenario runs on instead of its own (as `lab run --topology`: grade a student's file)",
    )
    group.addoption(
        "--lab-scenarios",
        action="store_true",
        default=False,
        help="collect scenario YAML files given on the command line as tests (one item per step)",
    )
    group.addoption(
        "--lab-reports", default=None, help="where scenario items write pcaps and logs (default: a tmp dir)"
    )
    group.addoption(
        "--lab-prefix",
        default=None,
        help="kernel name prefix of the labs this run builds (default: the first free ml<N>)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab_topology(path): the topology the 'lab' fixture builds for this module")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "mail-lab builds network namespaces: needs root"
    return None


# -- fixtures ------------------------------------------------------------------------------


class NodeHandle:
    """A node of a running lab: run programs inside it."""

    def __init__(self, lab: Any, name: str):
        self._lab = lab
        self.name = name
        self._node = lab.node(name)

    @property
    def ip(self) -> str | None:
        return self._node.ip

    def run(self, args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside the node's namespaces; stdout/stderr captured as text."""
        return self._node.run(args, **kw)


class LabHandle:
    """The running lab a test talks to: nodes, and every scenario action as a call."""

    def __init__(self, lab: Any, workdir: Path):
        from lab.scenario.steps import Context

        self.lab = lab
        self.plan = lab.plan
        self.ctx = Context(lab, lab.run_id, workdir)

    def node(self, name: str) -> NodeHandle:
        return NodeHandle(self.lab, name)

    def step(self, kind: str, **params: Any) -> Any:
        """Run one scenario action (send, fetch, dns, ping, probe...) and return its Outcome."""
        from lab.model import scenario as S
        from lab.scenario.steps import ACTIONS

        model = S.ACTIONS[kind].model_validate(params)
        return ACTIONS[kind](self.ctx, model)


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    """A lab built from the module's topology, torn down after the module."""
    marker = request.node.get_closest_marker("lab_topology")
    path = request.config.getoption("--lab-topology") or (marker.args[0] if marker else None)
    if path is None:
        pytest.fail("the 'lab' fixture needs a topology: pytest.mark.lab_topology('file.yaml') or --lab-topology")
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    from lab.deploy.lab import Lab
    from lab.model.load import load_topology
    from lab.model.plan import make_plan

    topo = Path(path)
    if not topo.is_absolute():
        topo = Path(request.config.rootpath) / topo
    built = Lab(make_plan(load_topology(topo)), prefix=request.config.getoption("--lab-prefix"))
    try:
        built.up()
        yield LabHandle(built, tmp_path_factory.mktemp("lab"))
    finally:
        built.down()


# -- scenario files as tests ---------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not parent.config.getoption("--lab-scenarios") or file_path.suffix not in (".yaml", ".yml"):
        return None
    from lab.model.yamlload import load_file

    try:
        data = load_file(file_path).data
    except LabError:
        data = None
    if isinstance(data, dict) and "steps" in data and "topology" in data:
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def _topology_option(config: pytest.Config) -> Path | None:
    value = config.getoption("--lab-topology")
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


def _readable(name: str) -> str:
    """A step name as a test id: pytest's node ids use '::' and '/' as separators."""
    return name.replace("::", ": ").replace("/", "|")


class StepFailed(Exception):
    """A scenario step or wire assertion did not hold."""


class ScenarioFile(pytest.File):
    """One scenario: its lab is built before the first step and torn down after the last."""

    def collect(self) -> Iterator[pytest.Item]:
        from lab.model.scenario import load_scenario

        # --lab-topology grades the scenario on another topology (a student's), as
        # `lab run --topology` does; bad input fails collection with the located error
        self.scenario = load_scenario(self.path, topology=_topology_option(self.config))
        for st in self.scenario.steps:
            yield StepItem.from_parent(self, name=f"{st.index:02d} {_readable(st.name)}", step=st)
        if any(st.kind in ("send", "flood") for st in self.scenario.steps):
            last = len(self.scenario.steps)
            yield AccountingItem.from_parent(self, name=f"{last:02d} accounting: nothing lost, nothing duplicated")
        w = self.scenario.wire
        if w is not None:
            # the checks' own names (the ones reports and rubrics use), in the order they run
            for i, n in enumerate(w.check_names()):
                yield WireItem.from_parent(self, name=_readable(n), position=i)

    def setup(self) -> None:
        reason = _why_not()
        if reason:
            pytest.skip(reason)
        from lab.deploy.lab import Lab
        from lab.scenario.captures import Captures
        from lab.scenario.steps import Context

        option = self.config.getoption("--lab-reports")
        base = Path(option) if option else Path(self.config._tmp_path_factory.mktemp("scenario"))  # type: ignore[attr-defined]
        self.workdir = base / self.path.stem
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lab: Lab | None = Lab(self.scenario.plan, prefix=self.config.getoption("--lab-prefix"))
        self.ctx = Context(self.lab, self.lab.run_id, self.workdir, record_keys=self.scenario.capture)
        self.captures = Captures(self.workdir, lambda m: None) if self.scenario.capture else None
        self.wire_results: list[tuple[str, Any]] | None = None
        try:
            self.lab.up(on_network=self.captures.start if self.captures else None)
        except BaseException:
            self.teardown()
            raise

    def wire(self) -> list[tuple[str, Any]]:
        """Stop the captures and check the wire assertions (once, for every wire item)."""
        if self.wire_results is None:
            from lab.report.results import RunResult

            assert self.captures is not None
            self.captures.stop()
            self.ctx.save_keylog()
            lab = cast("Lab", self.lab)  # set by setup(); teardown() clears it only after the last item
            result = RunResult(lab.run_id, self.scenario.name, str(self.scenario.path), "", "", "")
            self.captures.analyse(result, self.scenario, lab, self.ctx)
            self.wire_results = [(s.name, s) for s in result.steps]
        return self.wire_results

    def teardown(self) -> None:
        lab = getattr(self, "lab", None)
        if lab is None:
            return
        try:
            if self.captures is not None:
                self.captures.stop()
        finally:
            lab.collect(self.workdir)
            lab.down()
            self.lab = None


class StepItem(pytest.Item):
    def __init__(self, *, step: Any, **kw: Any):
        super().__init__(**kw)
        self.step = step

    def runtest(self) -> None:
        from lab.scenario.runner import run_step

        parent: ScenarioFile = self.parent  # type: ignore[assignment]
        out = run_step(parent.ctx, self.step)
        self.user_properties.append(("message", out.message))
        if out.status != "passed":
            raise StepFailed(out.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, StepFailed):
            return f"{self.path.name}:{self.step.line}: {self.step.kind}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, (self.step.line or 1) - 1, self.name


class AccountingItem(pytest.Item):
    """Every accepted message delivered once: checked after the steps, as `lab run` does."""

    def runtest(self) -> None:
        from lab.scenario.accounting import account

        parent: ScenarioFile = self.parent  # type: ignore[assignment]
        rows, verdict = account(parent.ctx)
        self.user_properties.append(("accounting", rows))
        if verdict is not None and verdict.status != "passed":
            raise StepFailed(f"accounting: {verdict.message}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, StepFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


class WireItem(pytest.Item):
    def __init__(self, *, position: int, **kw: Any):
        super().__init__(**kw)
        self.position = position

    def runtest(self) -> None:
        parent: ScenarioFile = self.parent  # type: ignore[assignment]
        results = parent.wire()
        name, res = results[self.position]
        self.user_properties.append(("check", name))
        if res.status != "passed":
            raise StepFailed(f"{name}: {res.message}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, StepFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name
