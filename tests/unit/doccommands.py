"""The commands the README and the docs show, and how the tests run each one.

A command is a line of a ``sh`` block (or a ``$ `` line of an untyped block) or an
inline code span that starts like a command (``lab``, ``scripts/``, ``pytest``,
``.venv/bin/python``, ``echo ... | lab``).  A synopsis (``lab exec NODE -- CMD``,
``lab up/exec/down``) is not a command.  Every other one has a way to be checked
(``HOW``): run offline, run on the live lab of ``lab up topologies/dmz.yaml``, run as a
full scenario, or covered by a named test that runs the very same command.  A new
command in the docs that fits none of them fails ``tests/unit/test_docs_commands.py``
until it is given one.  The worksheets (docs/labs) have their own test.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/students.md", "docs/instructors.md", "mailnode/README.md")
STARTS = re.compile(r"^(lab |lab$|scripts/|pytest |\.venv/bin/(python|lab)\b|echo .*\| lab )")
SYNOPSIS = re.compile(
    r"<[\w-]+>|\b[A-Z]{3,}\b|\[|\.\.\.|\\\||^lab$|^lab (up|validate|graph|grade|grade merge|report|exec|variant)$|^\.venv/bin/lab$|^lab \w+/\w+"
)
LIVE = ("exec", "cli", "list", "down", "up")
OFFLINE = ("validate", "graph", "schema", "labs", "clean", "report", "variant")
#: commands another test runs exactly as written, with where
COVERED = {
    "scripts/test": "CI itself: .ci/run is exactly scripts/test",
    ".venv/bin/python bench/bench.py": "tests/integration/test_bench_quick.py runs bench/bench.py (--quick)",
}


@dataclass(frozen=True)
class DocCommand:
    file: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def argv(self) -> list[str]:
        """The command after the ``echo ... |`` feeding it, as words."""
        return shlex.split(self.text.split("|", 1)[1] if self.text.startswith("echo ") else self.text)

    @property
    def stdin(self) -> str | None:
        if self.text.startswith("echo "):
            return shlex.split(self.text.split("|", 1)[0])[1] + "\n"
        return None

    @property
    def how(self) -> str:
        """offline, live, run, plugin or covered (see the module's doc)."""
        if self.text in COVERED:
            return "covered"
        argv = self.argv
        if argv[0] == "pytest":
            return "plugin"
        if argv[0] == "scripts/lab":
            argv = ["lab", *argv[1:]]
        if argv[0] != "lab" or len(argv) < 2:
            return "unknown"
        sub = argv[1]
        if sub == "run":
            return "run"
        if sub in LIVE:
            return "live"
        if sub in OFFLINE:
            return "offline"
        return "unknown"


def _block_lines(text: str) -> list[tuple[int, str]]:
    out, lang, inside = [], "", False
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            inside, lang = not inside, line[3:].strip()
            continue
        if not inside:
            continue
        s = line.strip()
        if lang in ("sh", "bash", "shell"):
            out.append((n, s[2:] if s.startswith("$ ") else s))
        elif s.startswith("$ "):
            out.append((n, s[2:]))
    return out


def commands(files: tuple[str, ...] = DOCS) -> list[DocCommand]:
    """Every command of ``files`` (synopses left out), in order."""
    found = []
    for f in files:
        text = (REPO / f).read_text()
        lines = [(n, 0, re.sub(r"\s+#.*$", "", s)) for n, s in _block_lines(text)]
        inside = False
        for n, line in enumerate(text.splitlines(), 1):
            if line.startswith("```"):
                inside = not inside
            elif not inside:
                lines += [(n, m.start(), m.group(1)) for m in re.finditer(r"`([^`]+)`", line)]
        for n, _col, cmd in sorted(lines):  # in reading order
            cmd = cmd.strip()
            if cmd and STARTS.match(cmd) and not SYNOPSIS.search(cmd):
                found.append(DocCommand(f, n, cmd))
    # a code span inside a sh block is the block's line again
    seen, out = set(), []
    for c in found:
        if (c.file, c.line, c.text) not in seen:
            seen.add((c.file, c.line, c.text))
            out.append(c)
    return out
