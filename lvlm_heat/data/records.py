"""A dataset file, record by record: one bad record becomes one failed pair, never a refused dataset.

Every record carries where it is, 1-based: a JSONL record names its line in the file (``line 3``), a
JSON list its position in the list (``record 3``), a CSV/TSV row its position among the rows and the
line of the file where it ends (``record 3 (line 4)``). A record that cannot be read, or whose fields
are wrong, becomes a :class:`~lvlm_heat.data.pairs.Pair` with ``error`` set to ``"<where>: <reason>"``
and, when it has no id of its own, the id ``line_3`` / ``record_3``.

Only problems of the whole file raise :class:`~lvlm_heat.errors.LvlmHeatError`: it cannot be read or is
not UTF-8 text; a ``json`` file is not valid JSON or not a list; the file holds no record, or no record
that could be read at all (e.g. a pretty-printed JSON list read as JSONL); or no record has a field the
reader needs (a field name set wrong, see :func:`require_fields`).
"""

from __future__ import annotations

import csv
import io
import json
import reprlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lvlm_heat.data.pairs import Pair
from lvlm_heat.errors import LvlmHeatError

_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


class RecordError(ValueError):
    """One record's problem; the message is the reason recorded on its failed pair."""


@dataclass(frozen=True)
class Record:
    """One record of a dataset file, or why it could not be read."""

    where: str
    """Its place for messages: ``line 3``, ``record 3``, ``record 3 (line 4)``."""
    fallback_id: str
    """The id of its pair if it fails without an id of its own: ``line_3``, ``record_3``."""
    fields: dict[str, Any] | None
    """The record's fields; ``None`` when it could not be read."""
    problem: str | None = None
    """Why it could not be read."""


def _json_type(value: Any) -> str:
    """What a JSON value is, with its article: ``a list``, ``an object``, ``null``."""
    return "null" if value is None else _JSON_TYPES.get(type(value), f"a {type(value).__name__}")


def _read_text(path: Path, kind: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's byte-order mark is not part of a field
    except UnicodeDecodeError as err:
        raise LvlmHeatError(f"{path}: not UTF-8 text (byte {err.start}), so not a {kind} dataset") from err
    except OSError as err:
        raise LvlmHeatError(f"cannot read {path}: {err.strerror or err}") from err


def _object(where: str, fallback_id: str, value: Any) -> Record:
    if isinstance(value, dict):
        return Record(where, fallback_id, value)
    return Record(where, fallback_id, None, f"not a JSON object ({_json_type(value)})")


def _jsonl(text: str) -> list[Record]:
    records = []
    for number, line in enumerate(text.split("\n"), start=1):  # "\n" only: str.splitlines also splits inside strings
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            records.append(Record(f"line {number}", f"line_{number}", None,
                                  f"not valid JSON ({err.msg} at column {err.colno})"))
            continue
        records.append(_object(f"line {number}", f"line_{number}", value))
    return records


def _json(path: Path, text: str) -> list[Record]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LvlmHeatError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from err
    if not isinstance(data, list):
        raise LvlmHeatError(f"{path}: a JSON dataset is a list of objects, got {_json_type(data)}")
    return [_object(f"record {number}", f"record_{number}", value) for number, value in enumerate(data, start=1)]


def _csv(path: Path, text: str) -> list[Record]:
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    if reader.fieldnames is None:
        return []
    reader.fieldnames = [name.strip() for name in reader.fieldnames]  # " question" is the question column
    records = []
    while True:
        number = len(records) + 1
        try:
            row = next(reader)
        except StopIteration:
            return records
        except csv.Error as err:  # the reader goes on at the next line
            records.append(Record(f"record {number} (line {reader.line_num})", f"record_{number}", None,
                                  f"not valid CSV ({err})"))
            continue
        where = f"record {number} (line {reader.line_num})"
        if None in row:  # more values than columns: a separator inside an unquoted value shifted the fields
            problem = f"{len(reader.fieldnames) + len(row[None])} values for {len(reader.fieldnames)} columns"
            records.append(Record(where, f"record_{number}", None, problem))
        else:  # fewer values than columns: the missing trailing values are empty
            records.append(Record(where, f"record_{number}", {k: v for k, v in row.items() if v is not None}))


def read_records(path: Path, kind: str, named: bool = False) -> list[Record]:
    """The records of a ``jsonl``, ``json`` or ``csv`` (``.tsv``: tab-separated) file, in file order.

    Args:
        path: The file.
        kind: ``jsonl``, ``json`` or ``csv``.
        named: Put the file's name in ``where`` and ``fallback_id`` (for a reader of several files).

    Raises:
        LvlmHeatError: For a problem of the whole file (see the module's docstring).
    """
    text = _read_text(path, kind)
    records = _jsonl(text) if kind == "jsonl" else _json(path, text) if kind == "json" else _csv(path, text)
    if not records:
        raise LvlmHeatError(f"{path}: no records, so no pairs")
    if all(record.fields is None for record in records):
        first = records[0]
        raise LvlmHeatError(f"{path}: not a {kind} dataset: no record could be read ({first.where}: {first.problem})")
    if named:
        records = [Record(f"{path.name} {r.where}", f"{path.stem}_{r.fallback_id}", r.fields, r.problem)
                   for r in records]
    return records


def require_fields(path: Path, records: list[Record], *names: tuple[str, str]) -> None:
    """Refuse a file in which no record has one of ``names`` (``(field, what to do about it)``).

    A field that a few records lack makes those records fail; one that every record lacks is a field
    name set wrong, said once instead of once per record.
    """
    readable = [record.fields for record in records if record.fields is not None]
    for name, hint in names:
        if not any(name in fields for fields in readable):
            found = ", ".join(repr(key) for key in readable[0])
            raise LvlmHeatError(f"{path}: no record has the field {name!r} (fields: {found}); {hint}")


def text_field(fields: dict[str, Any], name: str, hint: str = "") -> str | None:
    """An optional text field: ``None`` when absent, null or empty; numbers become text."""
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (dict, list)):
        raise RecordError(f"the {name!r} field is {_json_type(value)}, not text{hint}")
    return str(value)


def required_field(fields: dict[str, Any], name: str, hint: str = "") -> str:
    """A text field the pair needs; :class:`RecordError` when absent or empty."""
    value = text_field(fields, name, hint)
    if value is None:
        raise RecordError(f"{'empty' if name in fields else 'no'} {name!r} field{hint}")
    return value


def reference_fields(reference: str | None, explain_reference: bool) -> dict[str, str | None]:
    """A pair's ``reference`` and ``answer``: the reference is explained only when asked to."""
    return {"reference": reference, "answer": reference if explain_reference else None}


def short(value: Any) -> str:
    """``repr`` of a record's value, cut to a length that keeps a message on one line."""
    return reprlib.repr(value)


def pairs_from(records: Iterable[Record], build: Callable[[dict[str, Any]], Pair],
               own_id: Callable[[dict[str, Any]], str | None]) -> list[Pair]:
    """One pair per record: ``build(fields)``, or a failed pair when the record or ``build`` fails.

    Args:
        records: From :func:`read_records`.
        build: The pair of a record's fields; raises :class:`RecordError` (or ``ValueError``, ``TypeError``,
            ``KeyError``) for a bad record.
        own_id: The record's own id, if it has one, for its failed pair.
    """
    pairs = []
    for record in records:
        try:
            if record.fields is None:
                raise RecordError(record.problem)
            pairs.append(build(record.fields))
        except (ValueError, TypeError, KeyError) as err:
            reason = str(err) if isinstance(err, RecordError) else f"{type(err).__name__}: {err}"
            name = None
            if record.fields is not None:
                try:
                    name = own_id(record.fields)
                except (ValueError, TypeError, KeyError):
                    name = None  # an unreadable id is part of the reason already; the location names the pair
            pairs.append(Pair(id=name or record.fallback_id, image=None, question="",
                              error=f"{record.where}: {reason}".replace("\n", " ")))
    return pairs
