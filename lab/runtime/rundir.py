"""Per-run identity: a run id, a short kernel-name prefix and a state directory.

Two labs may run at once on one machine, so every kernel-visible name (bridges, the
root-side ends of veth pairs, Mininet host shells) starts with a prefix that is
allocated atomically (``mkdir``) under ``STATE_ROOT/prefixes``.  The claim records
the owner's PID so ``lab clean`` can tell a killed run's leftovers from a live lab.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

# Not under /run: the mail node mounts its own tmpfs over /run.
STATE_ROOT = Path(os.environ.get("MAIL_LAB_STATE", "/var/lib/mail-lab"))
PREFIX_STEM = "ml"
MAX_PREFIXES = 99


@dataclass
class RunDir:
    run_id: str
    prefix: str
    state: Path          # daemons' config, spool and logs (root side of the private dirs)
    claim: Path          # STATE_ROOT/prefixes/<prefix>

    def node_dir(self, node: str) -> Path:
        d = self.state / "nodes" / node
        d.mkdir(parents=True, exist_ok=True)
        return d

    def release(self) -> None:
        shutil.rmtree(self.state, ignore_errors=True)
        shutil.rmtree(self.claim, ignore_errors=True)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        os.chmod(state, 0o755)
        (claim / "owner.json").write_text(json.dumps(
            {"pid": os.getpid(), "run_id": run_id, "state": str(state), "started": time.time()}))
        return RunDir(run_id, prefix, state, claim)
    from lab.errors import EnvironmentProblem
    if requested:
        raise EnvironmentProblem(f"the name prefix '{requested}' is in use by another lab",
                                 hint="run 'lab clean' if that lab was killed, or pick another prefix")
    raise EnvironmentProblem(f"all {MAX_PREFIXES} lab name prefixes are in use",
                             hint="run 'lab clean' to remove labs left by killed runs")


def claims() -> list[dict]:
    """Every claimed prefix with its owner record (``alive`` tells if the owner runs)."""
    root = STATE_ROOT / "prefixes"
    out = []
    if not root.is_dir():
        return out
    for claim in sorted(root.iterdir()):
        try:
            info = json.loads((claim / "owner.json").read_text())
        except (OSError, ValueError):
            info = {"pid": 0}
        info["prefix"] = claim.name
        info["claim"] = str(claim)
        info["alive"] = bool(info.get("pid")) and pid_alive(int(info["pid"]))
        out.append(info)
    return out
