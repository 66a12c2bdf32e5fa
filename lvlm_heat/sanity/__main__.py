"""``python -m lvlm_heat.sanity --help``: see :mod:`lvlm_heat.sanity.runner`."""

from lvlm_heat.sanity.runner import main

if __name__ == "__main__":
    main()
