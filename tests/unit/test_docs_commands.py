"""Every command the README and the docs show has a way to be run by a test (the
integration test runs them); the files they name exist."""

from __future__ import annotations

import pytest

from .doccommands import REPO, commands

#: names the docs use for the reader's own files (the integration test makes them)
READERS_FILES = {"my-ring.yaml", "student.yaml", "bad.yaml", "ring.svg"}
CMDS = commands()


def test_the_docs_show_commands() -> None:
    files = {c.file for c in CMDS}
    assert {"README.md", "docs/students.md", "docs/instructors.md"} <= files
    assert len(CMDS) > 30


@pytest.mark.parametrize("cmd", CMDS, ids=lambda c: f"{c.where} {c.text}"[:90])
def test_each_command_is_run_somewhere(cmd) -> None:
    assert cmd.how != "unknown", f"{cmd.where}: '{cmd.text}': tell tests/unit/doccommands.py how to run it"
    for word in cmd.argv:
        if word.endswith((".yaml", ".py")) and "/" in word:
            assert (REPO / word).is_file(), f"{cmd.where}: '{word}' does not exist"
        elif word.endswith((".yaml", ".svg")):
            assert word in READERS_FILES, f"{cmd.where}: '{word}': a file of the reader's the test does not know"


def test_synopses_are_not_commands() -> None:
    texts = {c.text for c in CMDS}
    assert not {"lab exec NODE -- CMD", "lab up", "lab", "lab up/exec/down"} & texts
