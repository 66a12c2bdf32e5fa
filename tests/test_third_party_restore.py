"""The compatibility layer's temporary patches are undone on exit: :class:`Patches`, :func:`patched`, :func:`stand_ins`.

Needs neither the upstream packages nor timm: dummy objects and modules only. That loading and running the
real Cambrian-1 and Mini-Gemini models leaves the process as it found it is checked in ``test_third_party.py``.
"""

from __future__ import annotations

import importlib
import json
import sys
import types

import pytest

from lvlm_heat.adapters.third_party.compat import Patches, _StandInFinder, patched, stand_ins


class Base:
    inherited = "base"


class Dummy(Base):
    size = 1

    @staticmethod
    def helper() -> str:
        return "helper"


def _own(target) -> dict:
    return dict(vars(target))


def test_patched_sets_inside_and_restores_after():
    before = _own(Dummy)
    with patched(Dummy, "size", 2) as value:
        assert value == 2 and Dummy.size == 2
    assert Dummy.size == 1 and _own(Dummy) == before


def test_an_attribute_that_did_not_exist_is_deleted_again():
    box = types.SimpleNamespace(size=1)
    with patched(box, "colour", "red"):
        assert box.colour == "red"
    assert not hasattr(box, "colour") and vars(box) == {"size": 1}


def test_an_inherited_attribute_is_not_copied_onto_the_subclass():
    with patched(Dummy, "inherited", "own"):
        assert Dummy.inherited == "own" and Base.inherited == "base"
    assert "inherited" not in vars(Dummy) and Dummy.inherited == "base"


def test_a_static_method_is_put_back_as_it_is_stored():
    stored = vars(Dummy)["helper"]
    with patched(Dummy, "helper", lambda: "patched"):
        assert Dummy.helper() == "patched"
    assert vars(Dummy)["helper"] is stored and Dummy().helper() == "helper"


def test_restored_when_the_block_raises():
    box = types.SimpleNamespace(size=1)
    table = {"kept": 1}
    items = [1, 2]
    with pytest.raises(RuntimeError, match="boom"), Patches() as patches:
        patches.setattr(box, "size", 2)
        patches.setattr(box, "colour", "red")
        patches.setitem(table, "kept", 2)
        patches.setitem(table, "added", 3)
        patches.insert(items, 0, 0)
        raise RuntimeError("boom")
    assert vars(box) == {"size": 1} and table == {"kept": 1} and items == [1, 2]
    with pytest.raises(RuntimeError), patched(Dummy, "size", 3):
        raise RuntimeError
    assert Dummy.size == 1


def test_the_same_attribute_patched_twice_comes_back_to_the_first_value():
    box = types.SimpleNamespace(size=1)
    with Patches() as patches:
        patches.setattr(box, "size", 2)
        patches.setattr(box, "size", 3)
        assert box.size == 3
    assert box.size == 1


def test_keep_restores_whatever_changed_it_meanwhile():
    box = types.SimpleNamespace(size=1)
    table: dict = {}
    with Patches() as patches:
        patches.keep(box, "size")
        patches.keep(box, "colour")
        patches.keep_item(table, "key")
        box.size, box.colour, table["key"] = 2, "red", "value"  # changed by someone else, e.g. the import system
    assert vars(box) == {"size": 1} and table == {}


def test_insert_removes_exactly_the_inserted_object():
    first, second = [1], [1]  # equal, not the same
    items = [first]
    with Patches() as patches:
        patches.insert(items, 0, second)
        assert items[0] is second
    assert len(items) == 1 and items[0] is first


def _finders() -> list:
    return [finder for finder in sys.meta_path if isinstance(finder, _StandInFinder)]


def test_stand_ins_and_aliases_leave_nothing_behind_also_on_an_error():
    modules, meta_path = dict(sys.modules), list(sys.meta_path)
    json_attributes = dict(vars(json))
    with pytest.raises(RuntimeError, match="while importing"), \
            stand_ins(("json.removed_helpers", "no_such_package_xyz"), {"lvlm_heat_alias_xyz": "json"}):
        assert importlib.import_module("lvlm_heat_alias_xyz") is json
        helpers = importlib.import_module("json.removed_helpers")
        assert isinstance(helpers.__spec__.loader, _StandInFinder) and json.removed_helpers is helpers
        importlib.import_module("no_such_package_xyz.sub.deeper")
        assert len(_finders()) == 1
        raise RuntimeError("while importing")
    assert not _finders() and len(sys.meta_path) == len(meta_path)
    assert all(now is was for now, was in zip(sys.meta_path, meta_path))
    added = set(sys.modules) - set(modules)
    assert not {name for name in added if name.startswith(("lvlm_heat_alias_xyz", "no_such_package_xyz", "json."))}
    assert all(sys.modules.get(name) is module for name, module in modules.items())
    assert dict(vars(json)) == json_attributes


def test_an_alias_name_already_imported_is_left_alone():
    import json.decoder

    with stand_ins((), {"json.decoder": "json.encoder"}):
        assert importlib.import_module("json.decoder") is json.decoder
    assert sys.modules["json.decoder"] is json.decoder


def test_stand_ins_inside_stand_ins_undo_in_order():
    with stand_ins(("no_such_outer_xyz",)):
        outer = importlib.import_module("no_such_outer_xyz")
        with stand_ins(("no_such_inner_xyz",)):
            importlib.import_module("no_such_inner_xyz")
            assert len(_finders()) == 2
        assert "no_such_inner_xyz" not in sys.modules and sys.modules["no_such_outer_xyz"] is outer
    assert "no_such_outer_xyz" not in sys.modules and not _finders()
