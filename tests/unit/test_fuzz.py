"""Mutated copies of the shipped files: the loaders refuse them with located problems or
accept them, and never crash (a crash would be a traceback for the student)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lab.errors import InputError
from lab.model.load import load_topology
from lab.model.scenario import load_scenario

REPO = Path(__file__).resolve().parents[2]
FILES = sorted([*REPO.glob("topologies/*.yaml"), *REPO.glob("scenarios/*.yaml"), *REPO.glob("tests/data/good/*.yaml")])
TOKENS = [
    "",
    "~",
    "null",
    "[]",
    "{}",
    "-1",
    "0",
    "99999",
    "1e9",
    "yes",
    "'x'",
    '"\\n"',
    "[a, b]",
    "{a: 1}",
    "&a x",
    "*a",
    "10.0.0.0/8",
    "256.1.1.1",
    "tcp/0",
    "tcp/1-65536",
    "dhcp",
    "'a: b'",
    "-",
    ":",
    "?",
]


def mutate(rng: random.Random, text: str) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(lines))
        op = rng.random()
        if op < 0.3:
            del lines[i]
        elif op < 0.5:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op < 0.9 and ":" in lines[i]:
            lines[i] = lines[i].rsplit(":", 1)[0] + ": " + rng.choice(TOKENS)
        else:
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(6))
def test_mutations_never_crash_the_loader(seed: int) -> None:
    rng = random.Random(seed)
    for k in range(60):
        src = rng.choice(FILES)
        path = src.parent / f".fuzz-{seed}-{k}.yaml"  # beside the original: relative paths still resolve
        path.write_text(mutate(rng, src.read_text()))
        try:
            (load_scenario if "steps:" in path.read_text() else load_topology)(path)
        except InputError as exc:
            assert exc.problems and all(p.file for p in exc.problems)
        finally:
            path.unlink()
