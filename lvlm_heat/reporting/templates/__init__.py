"""The Jinja2 templates of what the reporting writes as HTML or text, and the environment that renders them.

The templates sit next to this module and ship as package data; :data:`ENVIRONMENT` finds them through the
package (:class:`~jinja2.PackageLoader`), so an installed wheel renders exactly what a checkout does:

- ``report.html.j2``: the page of ``report.html`` (skeleton, overview tables, filters, pager);
- ``charts.svg.j2``: the macros drawing the page's SVG histograms and share bars from prepared geometry;
- ``strip.html.j2``: the answer strip, as HTML (report and notebook) or as markdown (TensorBoard's text);
- ``explanation.html.j2``: an explanation in a notebook;
- ``report.css`` and ``report.js``: the page's style and script, inlined verbatim by :func:`asset`.

Autoescaping is on for every template: a value printed with ``{{ ... }}`` is HTML-escaped unless it is
:class:`~markupsafe.Markup` already (a rendered macro, the page's JSON blob).
"""

from __future__ import annotations

import math
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup


def number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, ``n/a`` for ``None`` or NaN (the ``number`` filter of the templates).

    >>> number(0.12345), number(None), number(float("nan")), number(2.5, 1)
    ('0.123', 'n/a', 'n/a', '2.5')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def asset(name: str) -> Markup:
    """The file ``name`` of the templates folder, verbatim (not a template: ``{#`` in a script stays as it is)."""
    source, _, _ = ENVIRONMENT.loader.get_source(ENVIRONMENT, name)
    return Markup(source)


ENVIRONMENT = Environment(
    loader=PackageLoader("lvlm_heat.reporting", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2", "svg.j2"), default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
"""The environment of every reporting template (strict: an undefined name is an error, not an empty string)."""
ENVIRONMENT.filters["number"] = number
ENVIRONMENT.globals["asset"] = asset


def render(template: str, /, **context: Any) -> str:
    """The template named ``template`` rendered with ``context``."""
    return ENVIRONMENT.get_template(template).render(**context)


def macro(name: str, template: str) -> Any:
    """The macro ``name`` of ``template``, as a Python callable returning :class:`~markupsafe.Markup`."""
    return getattr(ENVIRONMENT.get_template(template).module, name)
