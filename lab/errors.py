"""One exception root for the whole harness.

Library code raises; only the CLI turns an error into an exit code.  The codes are
the documented exit codes of `lab`: 1 assertions failed, 2 bad input, 3 environment
problem (not root, missing package), 4 a lab failed to build or a daemon failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class LabError(Exception):
    """Base of every error the harness raises on purpose."""

    exit_code = 4

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


@dataclass(frozen=True)
class Problem:
    """One located problem in an input file."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field, message = visible(self.field), visible(self.message)
        text = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        if self.hint:
            text += f"\n  hint: {visible(self.hint)}"
        return text


#: control characters a user's value may carry, shown as escapes (one problem, one line)
_ESCAPES = {i: f"\\x{i:02x}" for i in range(32)} | {10: "\\n", 13: "\\r", 9: "\\t", 0: "\\0", 127: "\\x7f"}


def visible(text: str) -> str:
    return text.translate(_ESCAPES)


@dataclass
class InputError(LabError):
    """A topology or scenario file is malformed; nothing has been built."""

    problems: list[Problem] = field(default_factory=list)
    exit_code = 2

    def __post_init__(self) -> None:
        Exception.__init__(self, str(self))
        self.message = str(self)
        self.hint = None

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class EnvironmentProblem(LabError):
    """The machine cannot run a lab: not root, a package or command is missing."""

    exit_code = 3


class BuildError(LabError):
    """The network could not be built or a service could not be deployed."""

    exit_code = 4


class ServiceError(BuildError):
    """A daemon failed its config check, failed to start or never became ready."""

    def __init__(self, node: str, daemon: str, message: str, *, log_tail: str = "", hint: str | None = None):
        text = f"{node}: {daemon}: {message}"
        if log_tail.strip():
            indented = "\n".join("    " + line for line in log_tail.rstrip().splitlines())
            text += f"\n  what it said (last lines of its output or log):\n{indented}"
        super().__init__(text, hint=hint)
        self.node = node
        self.daemon = daemon
        self.log_tail = log_tail
