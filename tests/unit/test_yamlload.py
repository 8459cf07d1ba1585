"""lab.model.yamlload: every value keeps the line:column it came from."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lab.errors import InputError, Problem
from lab.model.yamlload import dotted, load_file, load_text

DOC = textwrap.dedent("""\
    # a comment on line 1
    name: demo
    nodes:
      pc1: {role: host, address: dhcp}
      mail:
        role: mail
        address: 10.0.0.10
    links:
      - {a: pc1, b: s1}
      - a: mail
        b: s1
    """)


def problem_of(text: str) -> Problem:
    with pytest.raises(InputError) as info:
        load_text(text, "f.yaml")
    assert len(info.value.problems) == 1, str(info.value)
    return info.value.problems[0]


class TestMarks:
    def test_values_are_loaded(self) -> None:
        loc = load_text(DOC, "f.yaml")
        assert loc.data["nodes"]["pc1"] == {"role": "host", "address": "dhcp"}
        assert loc.data["links"][1] == {"a": "mail", "b": "s1"}

    @pytest.mark.parametrize(
        ("path", "where"),
        [
            ((), (2, 1)),  # the root mapping starts at its first key
            (("name",), (2, 1)),  # a key's mark is the key, not its value
            (("nodes",), (3, 1)),
            (("nodes", "pc1"), (4, 3)),
            (("nodes", "pc1", "role"), (4, 9)),  # inside a flow mapping
            (("nodes", "pc1", "address"), (4, 21)),
            (("nodes", "mail", "address"), (7, 5)),
            (("links",), (8, 1)),
            (("links", 0), (9, 5)),  # a sequence item: where its value starts
            (("links", 0, "b"), (9, 14)),
            (("links", 1), (10, 5)),
            (("links", 1, "b"), (11, 5)),
        ],
    )
    def test_mark(self, path: tuple, where: tuple[int, int]) -> None:
        assert load_text(DOC, "f.yaml").marks[path] == where

    def test_where_falls_back_to_nearest_ancestor(self) -> None:
        loc = load_text(DOC, "f.yaml")
        # a missing key is reported where its mapping is
        assert loc.where(("nodes", "pc1", "subnet")) == (4, 3)
        assert loc.where(("links", 7, "a")) == (8, 1)
        assert loc.where(("nope", "deeper")) == (2, 1)

    def test_problem_is_located_and_dotted(self) -> None:
        loc = load_text(DOC, "f.yaml")
        p = loc.problem(("links", 1, "b"), "unknown node 's1'", "did you mean 's2'?")
        assert str(p) == "f.yaml:11:5: links[1].b: unknown node 's1'\n  hint: did you mean 's2'?"

    @pytest.mark.parametrize(
        ("path", "text"),
        [
            ((), ""),
            (("links", 2, "to"), "links[2].to"),
            (("steps", 0, "send", "to", 1), "steps[0].send.to[1]"),
            ((0,), "[0]"),
        ],
    )
    def test_dotted(self, path: tuple, text: str) -> None:
        assert dotted(path) == text


class TestKeys:
    def test_yaml11_booleans_as_keys_stay_strings(self) -> None:
        loc = load_text("on: 1\nyes: 2\nno: 3\noff: 4\ntrue: 5\nnull: 6\n~: 7\n", "f.yaml")
        assert loc.data == {"on": 1, "yes": 2, "no": 3, "off": 4, "true": 5, "null": 6, "~": 7}
        assert all(isinstance(k, str) for k in loc.data)
        assert loc.marks[("yes",)] == (2, 1)

    def test_number_keys_become_their_text(self) -> None:
        loc = load_text("1: a\n010: b\n1.5: c\n", "f.yaml")
        assert loc.data == {"1": "a", "010": "b", "1.5": "c"}

    def test_values_keep_yaml_types(self) -> None:
        # only keys are protected; an unquoted 'on' as a value is still a boolean
        loc = load_text("a: on\nb: '10'\nc: 10\n", "f.yaml")
        assert loc.data == {"a": True, "b": "10", "c": 10}

    def test_duplicate_key_is_located_at_the_second_one(self) -> None:
        p = problem_of("nodes:\n  pc1: {role: host}\n  pc2: {role: host}\n  pc1: {role: mail}\n")
        assert (p.line, p.column, p.field) == (4, 3, "nodes.pc1")
        assert p.message == "duplicate key 'pc1' (first defined on line 2)"
        assert p.hint == "each name may appear only once in a mapping"

    def test_duplicate_key_inside_a_flow_mapping(self) -> None:
        p = problem_of("links:\n  - {a: pc1, b: s1, a: pc2}\n")
        assert (p.line, p.column, p.field) == (2, 21, "links[0].a")
        assert "first defined on line 2" in p.message

    def test_every_duplicate_is_reported(self) -> None:
        with pytest.raises(InputError) as info:
            load_text("a: 1\nb: 2\na: 3\nb: 4\n", "f.yaml")
        assert [(p.line, p.field) for p in info.value.problems] == [(3, "a"), (4, "b")]

    def test_merge_key_is_refused(self) -> None:
        p = problem_of("base: &b {role: host}\npc1:\n  <<: *b\n  address: dhcp\n")
        assert (p.line, p.column, p.field) == (3, 3, "pc1")
        assert "merge keys" in p.message

    def test_a_list_as_key_is_refused(self) -> None:
        p = problem_of("? [a, b]\n: 1\n")
        assert (p.line, p.column) == (1, 3)
        assert p.message == "a key must be a plain name, not a list or a mapping"


class TestSyntaxErrors:
    def test_syntax_error_is_located(self) -> None:
        p = problem_of("name: x\nnodes:\n  pc1: {role: host\n  pc2: {role: host}\n")
        assert p.message.startswith("YAML syntax error: ")
        assert (p.line, p.column) == (4, 6)
        assert p.hint == "while parsing a flow mapping that starts at line 3, column 8: is it closed?"

    def test_tab_is_located(self) -> None:
        p = problem_of("name: x\nnodes:\n\tpc1: {role: host}\n")
        assert (p.line, p.column) == (3, 1)
        assert "tab character" in p.message and "spaces" in (p.hint or "")

    def test_bad_indentation(self) -> None:
        p = problem_of("subnets:\n  lan:\n    cidr: 10.0.0.0/24\n      gateway: 10.0.0.1\n")
        assert p.line == 4
        assert "mapping values are not allowed" in p.message

    def test_unclosed_quote(self) -> None:
        p = problem_of('name: "demo\ndomain: projet.dz\n')
        assert p.line is not None and p.line >= 1
        assert p.message.startswith("YAML syntax error")

    def test_syntax_error_names_where_the_construct_began(self) -> None:
        p = problem_of("name: x\nnodes:\n  pc1: {role: host\n  pc2: {role: host}\n")
        assert "line 3" in str(p)


class TestEmptyAndFiles:
    @pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
    def test_empty(self, text: str) -> None:
        p = problem_of(text)
        assert (p.line, p.column, p.message) == (1, 1, "the file is empty")

    def test_explicit_empty_document_is_empty(self) -> None:
        # '---' alone is a document holding null: as empty as an empty file
        p = problem_of("---\n")
        assert p.message == "the file is empty"

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(InputError) as info:
            load_file(tmp_path / "nope.yaml")
        (p,) = info.value.problems
        assert p.line is None and p.message == "no such file"
        assert str(p) == f"{tmp_path / 'nope.yaml'}: no such file"

    def test_not_utf8(self, tmp_path: Path) -> None:
        f = tmp_path / "latin1.yaml"
        f.write_bytes("name: caf\xe9\n".encode("latin-1"))
        with pytest.raises(InputError) as info:
            load_file(f)
        p = info.value.problems[0]
        assert (p.message, p.line, p.column) == ("byte 0xe9 is not valid UTF-8", 1, 10)

    def test_load_file_keeps_the_path_as_given(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "t.yaml").write_text("a: 1\n")
        monkeypatch.chdir(tmp_path)
        assert load_file("t.yaml").file == "t.yaml"


class TestErrors:
    def test_problem_formatting(self) -> None:
        assert str(Problem("f", 3, 7, "a.b", "bad")) == "f:3:7: a.b: bad"
        assert str(Problem("f", 3, None, "a.b", "bad")) == "f:3: a.b: bad"
        assert str(Problem("f", None, None, "", "bad", "do this")) == "f: bad\n  hint: do this"

    def test_input_error_joins_problems_and_exits_2(self) -> None:
        e = InputError(problems=[Problem("f", 1, 1, "a", "x"), Problem("f", 2, 1, "b", "y", "z")])
        assert str(e) == "f:1:1: a: x\nf:2:1: b: y\n  hint: z"
        assert e.exit_code == 2
