"""Every YAML preset in configs/ parses against the entry point's signature."""

from pathlib import Path

import pytest
from jsonargparse import ArgumentParser

from lvlm_heat.cli import run

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_there_are_presets():
    assert len(CONFIGS) >= 2


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_parses(path):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_function_arguments(run)
    parser.add_argument("--config", action="config")
    config = parser.parse_args(["--config", str(path)])
    init = parser.instantiate_classes(config)
    assert init.optim.iterations >= 1 and init.select.rule in ("llr", "all", "words")
