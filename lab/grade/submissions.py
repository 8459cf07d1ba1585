"""A class's submissions: one folder per student, each hostile until it is checked.

A student's name is the folder's name and must be a plain one; only regular files the
rubric names are taken (no symbolic links, no devices, at most ``MAX_FILE`` bytes), and
copied into the grading output before anything reads them, so what is graded is what
the report keeps.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_FILE = 1024 * 1024
MAX_STUDENTS = 1000


@dataclass
class Submission:
    student: str
    folder: Path  # where it came from
    files: dict[str, Path] = field(default_factory=dict)  # name -> the copy that is graded
    refused: str | None = None  # why it is not graded (then it scores 0 and never runs)
    sha256: str = ""  # of the files taken, to resume an interrupted grading

    @property
    def topology(self) -> Path | None:
        return self.files.get("topology.yaml")


def discover(root: Path) -> tuple[list[Path], list[str]]:
    """The student folders under ``root`` (sorted), and the entries that are not one."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder of submissions")
    folders, skipped = [], []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        st = entry.lstat()
        if not stat.S_ISDIR(st.st_mode):
            skipped.append(f"{entry.name}: not a folder")
        elif not NAME_RE.fullmatch(entry.name):
            skipped.append(f"{entry.name!r}: not a plain student name (letters, digits, '.', '_', '-')")
        else:
            folders.append(entry)
    if len(folders) > MAX_STUDENTS:
        raise ValueError(f"{len(folders)} submissions: at most {MAX_STUDENTS} in one grading (use --shard)")
    return folders, skipped


def take(folder: Path, names: list[str], dest: Path) -> Submission:
    """Copy the files the rubric names from ``folder`` into ``dest`` (refusing what is not
    a small regular file) and fingerprint them."""
    sub = Submission(folder.name, folder)
    dest.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for name in names:
        src = folder / name
        try:
            st = src.lstat()
        except FileNotFoundError:
            if name == "topology.yaml":
                sub.refused = "no topology.yaml in the submission"
            continue
        if not stat.S_ISREG(st.st_mode):
            sub.refused = f"{name} is not a regular file (a link, a folder or a device): refused"
            continue
        if st.st_size > MAX_FILE:
            sub.refused = f"{name} is {st.st_size:,} bytes (at most {MAX_FILE:,})"
            continue
        copy = dest / name
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_FILE + 1)
        copy.write_bytes(data)
        digest.update(name.encode() + b"\0" + data + b"\0")
        sub.files[name] = copy
    sub.sha256 = digest.hexdigest()
    return sub


def copy_tree_files(src: Path, dest: Path) -> None:
    """Copy the regular files of one folder (no recursion, no links): a variant's files."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_file() and not p.is_symlink():
            shutil.copyfile(p, dest / p.name)
