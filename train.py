"""Explain where a vision-language model looks: ``python train.py --help``.

Exit status: 0 when every pair was explained (or found not visually grounded), 3 when the run
finished but some pairs failed, 1 or 2 for an error that stopped the run (one line on stderr).
"""

from lvlm_heat.cli import exit_status, main

if __name__ == "__main__":
    raise SystemExit(exit_status(main()))
