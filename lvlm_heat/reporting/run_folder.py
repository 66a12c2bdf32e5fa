"""The run folder: where a run writes, what produced it, and one run at a time in it.

A run folder is ``--output_dir`` or the next free ``lightning_logs/version_N``; every process of
a multi-process run must agree on it, so the launching process's choice travels to the processes
Lightning starts in an environment variable.

``run.json`` records what produced the folder: the package version, the model, adapter and
weights' dtype, and every setting that changes results. A later run into the same folder reuses
its finished pairs only when these are the same (``--resume force`` overrides); settings that do
not change results (batch size, devices, progress bars) may differ. While a run writes, it holds
an exclusive lock on ``.lock`` in the folder; the operating system releases it when the process
ends, however it ends, so a killed run never leaves the folder locked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.reporting.outputs import write_json_atomic

RUN_FILE, LOCK_FILE = "run.json", ".lock"


RUN_DIR_ENV = "LVLM_HEAT_RUN_DIR"


def next_run_dir(root: Path) -> Path:
    """``root/version_N`` with the first free ``N``, as Lightning names its runs."""
    root.mkdir(parents=True, exist_ok=True)
    taken = {int(p.name.split("_")[1]) for p in root.glob("version_*") if p.name.split("_")[1].isdigit()}
    number = 0
    while number in taken:
        number += 1
    return root / f"version_{number}"


def run_dir(output_dir: Path | None, logs_root: Path) -> Path:
    """The run folder, the same in every process of a multi-process run."""
    if output_dir is not None:
        return Path(output_dir)
    if RUN_DIR_ENV in os.environ:  # a process launched by rank 0 (Lightning's launcher copies the environment)
        return Path(os.environ[RUN_DIR_ENV])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise LvlmHeatError("a multi-process launch (torchrun, SLURM) needs --output_dir: every process must write there")
    return next_run_dir(Path(logs_root))


def prepare_run_dir(folder: Path) -> None:
    """Create the run folder, or say in one line why it cannot be used."""
    if folder.exists() and not folder.is_dir():
        raise LvlmHeatError(f"--output_dir {folder} is a file, not a folder: give a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LvlmHeatError(f"cannot create the output folder {folder}: {err.strerror}") from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LvlmHeatError(f"cannot write to the output folder {folder}: permission denied")


def launching_process() -> bool:
    """Whether this process started the run (not one Lightning or ``torchrun`` started for another rank)."""
    return RUN_DIR_ENV not in os.environ and int(os.environ.get("RANK", "0")) == 0


def check_identity(folder: Path, identity: dict[str, Any], force: bool = False,
                   runtime: dict[str, Any] | None = None) -> None:
    """Record ``identity`` in ``folder/run.json``, or refuse, in one line, a folder made otherwise.

    Args:
        folder: The run folder.
        identity: What changes results: version, model, adapter, dtype, settings (JSON values).
        force: Reuse the folder whatever made it (its ``run.json`` then records this run).
        runtime: What this run ran with and changes no result (threads): recorded, never compared.
    """
    path = folder / RUN_FILE
    try:
        recorded = json.loads(path.read_text())["identity"]
    except FileNotFoundError:
        recorded = None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LvlmHeatError(f"{path} is unreadable ({err}): remove it, or choose another --output_dir") from err
    if recorded is not None and recorded != identity and not force:
        differences = ", ".join(_differences(recorded, identity)[:4])
        raise LvlmHeatError(
            f"{folder} holds results of another configuration ({differences}): choose a new --output_dir, "
            "or pass --resume force to reuse its finished pairs anyway"
        )
    write_json_atomic(path, {"identity": identity, "runtime": runtime or {}})


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} then, {new!r} now"]


class RunLock:
    """An exclusive lock on the run folder, held while this process runs (a context manager)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self.handle = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock, as before
            return self
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise LvlmHeatError(
                f"another run ({holder}) is writing to {self.path.parent}: wait for it to finish, or choose "
                "another --output_dir"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()}")
        self.handle.flush()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.handle is not None:
            self.handle.close()  # closing releases the lock
