"""Per-student variants of a lab: the same exercise with each student's own subnets,
domains, users and passwords, derived from a seed, so answers cannot be copied.

A variant is a mapping applied to the *data* of a topology or a scenario (never to
text): mail domains (``projet.dz`` -> ``cedre.dz``, in names, addresses and MX answers),
user names (the keys under ``users`` and the local part of addresses), passwords, and
the private ``10.x`` addresses (the second octet shifted: in addresses, subnets, pools
and reverse names).  The same seed and roster give the same variants every time;
``lab grade --variants`` grades each student against their own.
"""

from __future__ import annotations

import csv
import hashlib
import io
import ipaddress
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab.errors import InputError, Problem
from lab.model.yamlload import Located, read_text

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
WORDS = (
    "atlas",
    "cedre",
    "oasis",
    "sahel",
    "tassili",
    "hoggar",
    "djurdjura",
    "medjerda",
    "tafna",
    "chelif",
    "soummam",
    "aures",
    "zibans",
    "kabylie",
    "mitidja",
    "ouarsenis",
    "titteri",
    "hodna",
    "tell",
    "erg",
    "hamada",
    "reg",
    "sebkha",
    "chott",
    "wadi",
    "ksar",
    "casbah",
    "medina",
    "souk",
    "fondouk",
)
USERS = (
    "amina",
    "yacine",
    "lina",
    "karim",
    "sara",
    "mehdi",
    "nadia",
    "omar",
    "ines",
    "samir",
    "leila",
    "rachid",
    "yasmine",
    "walid",
    "meriem",
    "nassim",
    "houda",
    "farid",
    "salima",
    "anis",
)
MAX_STUDENTS = 1000
#: a reverse name (4.3.2.10.in-addr.arpa) or an address, in one pass so neither is moved twice
_ADDR = re.compile(
    r"(?P<rev>(?<![\w.-])(?:\d{1,3}\.){1,4}in-addr\.arpa\b)|(?P<ip>(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\d))"
)


@dataclass
class Variant:
    student: str
    domains: dict[str, str] = field(default_factory=dict)  # projet.dz -> cedre.dz
    users: dict[str, str] = field(default_factory=dict)  # alice -> amina
    passwords: dict[str, str] = field(default_factory=dict)  # new user -> new password
    shift: int = 0  # 10.a.b.c -> 10.(a + shift) % 256 .b.c

    # --- values ---------------------------------------------------------------------
    def ip(self, addr: str) -> str:
        try:
            ip = ipaddress.IPv4Address(addr)
        except ValueError:
            return addr
        if not ip.is_private or ip.packed[0] != 10 or not self.shift:
            return addr
        a, b, c, d = ip.packed
        return f"{a}.{(b + self.shift) % 256}.{c}.{d}"

    def text(self, s: str) -> str:
        s = _ADDR.sub(lambda m: self._reverse(m.group("rev")) if m.group("rev") else self.ip(m.group("ip")), s)
        for old, new in sorted(self.domains.items(), key=lambda kv: -len(kv[0])):
            s = re.sub(rf"(?<![\w-]){re.escape(old)}(?![\w-])", new, s)
        for old, new in self.users.items():
            for dom in self.domains.values():
                s = re.sub(rf"(?<![\w.%!+-]){re.escape(old)}@{re.escape(dom)}", f"{new}@{dom}", s)
        return s

    def _reverse(self, name: str) -> str:
        octets = name[: -len("in-addr.arpa")].rstrip(".").split(".")
        if octets[-1] != "10":
            return name
        full = list(reversed(octets)) + ["0"] * (4 - len(octets))
        moved = self.ip(".".join(full)).split(".")[: len(octets)]
        return ".".join(reversed(moved)) + ".in-addr.arpa"

    # --- data -----------------------------------------------------------------------
    def apply(self, data: Any, path: tuple[str, ...] = ()) -> Any:
        """The data with the variant applied; keys of ``users`` and ``domains`` renamed too."""
        if isinstance(data, dict):
            out = {}
            for k, v in data.items():
                key = k
                if path[-1:] == ("users",):
                    key = self.users.get(k, k)
                elif path == ("domains",):
                    key = self.domains.get(k, k)
                value = self.apply(v, (*path, str(key)))
                if path[-2:-1] == ("users",) and k in self.users and isinstance(value, dict) and "password" in value:
                    value = {**value, "password": self.passwords[self.users[k]]}
                out[key] = value
            return out
        if isinstance(data, list):
            return [self.apply(v, path) for v in data]
        if isinstance(data, str):
            return self.text(data)
        return data


def make(student: str, index: int, seed: str, topology: dict[str, Any], taken: set[str]) -> Variant:
    """The variant of one student: everything follows from (seed, student)."""
    h = int.from_bytes(hashlib.sha256(f"{seed}\0{student}".encode()).digest()[:8], "big")
    v = Variant(student, shift=1 + (h % 199))
    domains = [topology["domain"], *(d for d in (topology.get("domains") or {}) if d != topology["domain"])]
    for k, dom in enumerate(dict.fromkeys(domains)):
        tld = dom.rsplit(".", 1)[-1]
        word = WORDS[(h // 7 + k * 11 + index) % len(WORDS)]
        new = f"{word}.{tld}"
        n = 2
        while new in taken:
            new, n = f"{word}{n}.{tld}", n + 1
        taken.add(new)
        v.domains[dom] = new
    users = [u for d in (topology.get("domains") or {}).values() for u in (d.get("users") or {})]
    pool = [u for u in USERS]
    for k, user in enumerate(dict.fromkeys(users)):
        v.users[user] = pool[(h // 13 + k * 7) % len(pool)] if pool else user
        pool.remove(v.users[user])
        rng = hashlib.sha256(f"{seed}\0{student}\0{user}".encode()).hexdigest()
        v.passwords[v.users[user]] = f"{v.users[user]}-{rng[:10]}"
    return v


def read_roster(path: Path) -> tuple[list[str], list[Problem]]:
    """Student names from a CSV with a ``student`` column (hostile until checked)."""
    text = read_text(path)
    name = str(path)
    rows = list(csv.DictReader(io.StringIO(text)))
    problems: list[Problem] = []
    if not rows or "student" not in (rows[0].keys() if rows else []):
        return [], [Problem(name, 1, 1, "", "the roster needs a 'student' column", "a first line: student")]
    if len(rows) > MAX_STUDENTS:
        problems.append(Problem(name, 1, 1, "", f"{len(rows)} students: at most {MAX_STUDENTS}"))
    seen: dict[str, int] = {}
    students = []
    for i, row in enumerate(rows, start=2):
        s = (row.get("student") or "").strip()
        if not NAME_RE.fullmatch(s):
            problems.append(
                Problem(
                    name,
                    i,
                    1,
                    "student",
                    f"{s!r} is not a plain name",
                    "letters, digits, '.', '_' or '-' (it names the student's folder)",
                )
            )
        elif s in seen:
            problems.append(Problem(name, i, 1, "student", f"'{s}' is already on line {seen[s]}"))
        else:
            seen[s] = i
            students.append(s)
    return students, problems


def variants(roster: Path, topology: Located, seed: str | None = None) -> tuple[str, dict[str, Variant]]:
    students, problems = read_roster(roster)
    if problems:
        raise InputError(problems=problems)
    seed = seed or secrets.token_hex(8)
    taken: set[str] = set()
    return seed, {s: make(s, i, seed, topology.data, taken) for i, s in enumerate(students)}


def dump(data: Any, header: str) -> str:
    return "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, width=120
    )


def to_json(v: Variant) -> dict[str, Any]:
    return asdict(v)


def from_json(d: dict[str, Any]) -> Variant:
    return Variant(str(d["student"]), dict(d["domains"]), dict(d["users"]), dict(d["passwords"]), int(d["shift"]))
