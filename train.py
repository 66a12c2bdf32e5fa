"""Explain where a vision-language model looks: ``python train.py --help``."""

from lvlm_heat.cli import main

if __name__ == "__main__":
    main()
