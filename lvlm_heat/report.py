"""``python -m lvlm_heat.report RUN_DIR``: (re)write ``RUN_DIR/report.html`` from a run folder.

Every run writes its report at the end; this rebuilds it from the folder alone (after a resume, a
run stopped part-way, or a newer version of the page). See :mod:`lvlm_heat.reporting.report`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lvlm_heat.errors import LvlmHeatError


def main(argv: list[str] | None = None) -> Path:
    """Parse ``argv`` (default ``sys.argv[1:]``), write the report and print its path.

    A missing or invalid folder is one line on stderr and exit status 1 (``LVLM_HEAT_DEBUG=1`` shows
    the traceback instead).
    """
    from lvlm_heat.cli import DEBUG_ENV
    from lvlm_heat.reporting.report import write_report

    parser = argparse.ArgumentParser(prog="python -m lvlm_heat.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run folder (--output_dir of a run, or lightning_logs/version_N)")
    arguments = parser.parse_args(argv)
    try:
        path = write_report(arguments.run_dir)
    except LvlmHeatError as err:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(path)
    return path


if __name__ == "__main__":
    main()
