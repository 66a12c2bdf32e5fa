"""Every YAML preset in configs/ parses with the command line's own parser, states only what differs from the
defaults, and says in its comment what it changes; the docs name only presets that exist."""

import re
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from lvlm_heat.cli import parse
from lvlm_heat.config import ExplainConfig, ModelConfig

ROOT = Path(__file__).parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def _flat(tree: dict, prefix: str = "") -> dict:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _defaults() -> dict:
    defaults = parse([])
    return _flat({**asdict(defaults["model"]), **asdict(defaults["explain"]),
                  **{k: v for k, v in defaults.items() if k not in ("model", "explain")}})


def test_every_preset_the_docs_name_exists():
    texts = [(ROOT / "README.md").read_text(), *(p.read_text() for p in (ROOT / "docs").glob("*.md"))]
    named = {name for text in texts for name in re.findall(r"configs/([\w.-]+\.yaml)", text)}
    assert named, "the docs name no preset"
    assert named <= {path.name for path in CONFIGS}, named - {path.name for path in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_parses(path):
    options = parse(["--config", str(path)])
    assert isinstance(options["explain"], ExplainConfig) and isinstance(options["model"], ModelConfig)
    if path.stem not in ("demo", "paper-absolute-lr"):  # a model preset names its checkpoint
        assert "/" in options["model"].model, f"{path.name} names no hub checkpoint"


def _problems(text: str) -> list[str]:
    """What is wrong with a preset: a setting that is none, restates its default, or that its comment does not name."""
    comment = " ".join(line for line in text.splitlines() if line.startswith("#"))
    defaults, problems = _defaults(), []
    for key, value in _flat(yaml.safe_load(text)).items():
        if key not in defaults:
            problems.append(f"{key} is no setting")
        elif value == defaults[key]:
            problems.append(f"restates the default {key}: {value!r}")
        elif key != "model" and not re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", comment):
            problems.append(f"the comment does not name {key}")  # the model is the preset's subject, its file name
    return problems


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_a_preset_states_only_what_differs_and_its_comment_names_each_change(path):
    assert _problems(path.read_text()) == []


def test_the_preset_rule_catches_a_restated_default_and_a_silent_change():
    assert _problems("# batch 8\nmodel: x/y\nselect:\n  rule: evidence\n") == [
        "restates the default select.rule: 'evidence'"]
    assert _problems("# batch 8\nmodel: x/y\nselect:\n  rule: llr\n") == ["the comment does not name select.rule"]
    assert _problems("# select.rule llr: the paper's\nselect:\n  rule: llr\n") == []
    assert _problems("# optim.batchsize 2\noptim:\n  batchsize: 2\n") == ["optim.batchsize is no setting"]
