"""Every YAML preset in configs/ parses with train.py's own parser, and the README names only presets that exist."""

import re
from pathlib import Path

import pytest

from lvlm_heat.cli import parse
from lvlm_heat.config import ExplainConfig

ROOT = Path(__file__).parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_every_preset_the_readme_names_exists():
    named = set(re.findall(r"configs/([\w.-]+\.yaml)", (ROOT / "README.md").read_text()))
    assert named, "the README names no preset"
    assert named <= {path.name for path in CONFIGS}, named - {path.name for path in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_parses(path):
    options = parse(["--config", str(path)])
    assert isinstance(options["explain"], ExplainConfig)
    assert options["explain"].optim.iterations >= 1 and options["explain"].select.rule in ("evidence", "llr", "all", "words")
    if path.stem not in ("demo", "paper-absolute-lr"):  # a model preset names its checkpoint
        assert "/" in options["model"], f"{path.name} names no hub checkpoint"
