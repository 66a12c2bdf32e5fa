"""``python -m lvlm_heat COMMAND ...``: the same as the ``lvlm-heat`` command."""

from lvlm_heat.cli import console

if __name__ == "__main__":
    raise SystemExit(console())
