"""Folder names for pairs: only the file-name-safe part of an id, unique in a run folder.

A dataset's ids are whatever its authors wrote: ``../escaped``, ``/etc/x``, ``a b?``, the same id twice.
Each pair's outputs go to ``<output_dir>/<folder>``, so a folder name must never leave the output folder
and two pairs must never share one (the second would overwrite the first, and be counted twice in the means).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_NAME_LENGTH = 100
"""Characters kept of an id (before a ``_<n>`` suffix): far below the 255 bytes file systems allow."""

RESERVED_NAMES = frozenset({"summary.json", "summary.csv", "run.json", "hparams.yaml"})
"""Names of the run's own files in the output folder, which no pair's folder may take."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(text: str) -> str:
    """The file-name-safe form of an id: a single path component that stays inside its parent folder.

    ASCII letters, digits, ``-``, ``_`` and ``.`` are kept; every other character (path separators,
    spaces, non-ASCII letters, whose bytes differ between file systems) becomes ``_``. Leading dots
    are dropped (no hidden folders, never ``.`` or ``..``), the name is cut to
    :data:`MAX_NAME_LENGTH` characters, and an id with nothing left is ``pair``.

    >>> safe_name("../escaped"), safe_name("/etc/passwd"), safe_name("a b?"), safe_name(".."), safe_name("")
    ('_escaped', '_etc_passwd', 'a_b_', 'pair', 'pair')
    """
    name = _UNSAFE.sub("_", str(text)).lstrip(".")[:MAX_NAME_LENGTH]
    return name or "pair"


def _suffixed(base: str, suffix: int) -> str:
    """``base_<suffix>``, the base cut so that the name stays within :data:`MAX_NAME_LENGTH`."""
    ending = f"_{suffix}"
    return base[: MAX_NAME_LENGTH - len(ending)] + ending


def unique_folders(ids: Sequence[str]) -> list[str]:
    """One distinct folder name per id, in the same order.

    Names are compared case-insensitively (``Cat`` and ``cat`` are one folder on macOS and Windows), and
    :data:`RESERVED_NAMES` are never given. Every safe name is claimed before any suffix is chosen, first
    by ids that are already safe (so a record whose own id is ``same_1`` keeps ``same_1``), then by the
    first record of each remaining name in file order; each other record gets the smallest ``_<n>``
    suffix that no record holds (the name cut to keep within :data:`MAX_NAME_LENGTH`).

    >>> unique_folders(["same", "same", "same_1", "same"])
    ['same', 'same_2', 'same_1', 'same_3']
    >>> unique_folders(["a/b", "a_b", "A_B"])
    ['a_b_1', 'a_b', 'A_B_2']
    """
    bases = [safe_name(name) for name in ids]
    folders: list[str | None] = [None] * len(bases)
    taken = {name.casefold() for name in RESERVED_NAMES}
    for k in sorted(range(len(bases)), key=lambda k: (bases[k] != ids[k], k)):
        if bases[k].casefold() not in taken:
            taken.add(bases[k].casefold())
            folders[k] = bases[k]
    next_suffix: dict[str, int] = {}  # where to resume the search for each name: linear in the number of duplicates
    for k, base in enumerate(bases):
        if folders[k] is not None:
            continue
        suffix = next_suffix.get(base.casefold(), 1)
        while _suffixed(base, suffix).casefold() in taken:
            suffix += 1
        next_suffix[base.casefold()] = suffix + 1
        folders[k] = _suffixed(base, suffix)
        taken.add(folders[k].casefold())
    return folders
