"""Per-run identity: a run id, a short kernel-name prefix and a state directory.

Two labs may run at once on one machine, so every kernel-visible name (bridges, the
root-side ends of veth pairs, Mininet host shells) starts with a prefix that is
allocated atomically (``mkdir``) under ``STATE_ROOT/prefixes``.  The claim records
the owner's PID so ``lab clean`` can tell a killed run's leftovers from a live lab.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from lab.runtime import proc

# Not under /run: the mail node mounts its own tmpfs over /run.
STATE_ROOT = Path(os.environ.get("MAIL_LAB_STATE", "/var/lib/mail-lab"))
#: automatic prefixes are <stem><N>; another developer's labs on the same machine use
#: their own stem (and state root), so kernel names never collide and `lab clean`
#: never touches them
PREFIX_STEM = os.environ.get("MAIL_LAB_PREFIX_STEM", "ml")
if not re.fullmatch(r"[a-z]{1,3}", PREFIX_STEM):
    raise SystemExit(f"MAIL_LAB_PREFIX_STEM={PREFIX_STEM!r}: use 1-3 lower-case letters")
MAX_PREFIXES = 99
#: each run's state is a tmpfs named <TMPFS_NAME>-<run-id>: the hosts' mounts say whose run it is
TMPFS_NAME = STATE_ROOT.name
RUN_ID = r"[0-9]{8}-[0-9]{6}-[0-9a-f]{4}"


@dataclass
class RunDir:
    run_id: str
    prefix: str
    state: Path  # daemons' config, spool and logs (root side of the private dirs)
    claim: Path  # STATE_ROOT/prefixes/<prefix>

    def node_dir(self, node: str) -> Path:
        d = self.state / "nodes" / node
        d.mkdir(parents=True, exist_ok=True)
        return d

    def release(self) -> None:
        remove_state(self.state)
        shutil.rmtree(self.claim, ignore_errors=True)


#: A run's state (spools, Maildirs, daemons' dirs) lives on a tmpfs of its own: mail
#: delivery creates and fsyncs a file per message, and on a disk that, not the
#: daemons, bounds throughput.  MAIL_LAB_TMPFS=0 keeps it on disk.
USE_TMPFS = os.environ.get("MAIL_LAB_TMPFS", "1") != "0"


def mount_state(state: Path) -> None:
    if not USE_TMPFS or os.geteuid() != 0:
        return
    import subprocess

    # the source names the run: lab hosts' bind mounts from it say which run they belong to
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "mode=0755,size=2g", f"{TMPFS_NAME}-{state.name}", str(state)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if r.returncode != 0:  # the run still works on disk, just slower
        import logging

        logging.getLogger(__name__).warning("state on disk: cannot mount a tmpfs: %s", r.stderr.strip())


def remove_state(state: Path) -> None:
    """Empty a run's state, unmount its tmpfs, remove the mount point.

    Emptied first: a lab host built while this run was up holds a copy of the
    tmpfs in its own mount namespace; it then holds an empty one."""
    import subprocess

    if not state.exists():
        return
    for child in list(state.iterdir()) if state.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            try:
                child.unlink()
            except OSError:
                pass
    mounted = any(len(f) > 4 and f[4] == str(state) for f in (ln.split() for ln in open("/proc/self/mountinfo")))
    if mounted:
        subprocess.run(["umount", "-l", str(state)], capture_output=True, stdin=subprocess.DEVNULL)
    shutil.rmtree(state, ignore_errors=True)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def claim_prefix(run_id: str, requested: str | None = None) -> RunDir:
    """Claim a free prefix (``ml1``..``ml99``) for this process, or the one requested."""
    root = STATE_ROOT / "prefixes"
    root.mkdir(parents=True, exist_ok=True)
    candidates = [requested] if requested else [f"{PREFIX_STEM}{i}" for i in range(1, MAX_PREFIXES + 1)]
    for prefix in candidates:
        claim = root / prefix
        try:
            claim.mkdir()
        except FileExistsError:
            continue
        state = STATE_ROOT / "runs" / run_id
        state.mkdir(parents=True, exist_ok=True)
        mount_state(state)
        os.chmod(state, 0o755)
        (claim / "owner.json").write_text(
            json.dumps({"pid": os.getpid(), "run_id": run_id, "state": str(state), "started": time.time()})
        )
        return RunDir(run_id, prefix, state, claim)
    from lab.errors import EnvironmentProblem

    if requested:
        raise EnvironmentProblem(
            f"the name prefix '{requested}' is in use by another lab",
            hint="run 'lab clean' if that lab was killed, or pick another prefix",
        )
    raise EnvironmentProblem(
        f"all {MAX_PREFIXES} lab name prefixes are in use", hint="run 'lab clean' to remove labs left by killed runs"
    )


def claims() -> list[dict]:
    """Every claimed prefix with its owner record (``alive`` tells if the owner runs)."""
    root = STATE_ROOT / "prefixes"
    out: list[dict] = []
    if not root.is_dir():
        return out
    for claim in sorted(root.iterdir()):
        try:
            info = json.loads((claim / "owner.json").read_text())
        except (OSError, ValueError):
            info = {"pid": 0}
        info["prefix"] = claim.name
        info["claim"] = str(claim)
        info["alive"] = proc.alive(int(info.get("pid") or 0))
        out.append(info)
    return out
