"""The docs say what the code does: every command line in ``README.md`` and ``docs/*.md`` names a real command and
real flags (checked with the command's own parser), every flag the prose names exists, every relative link
resolves, and the README stays short. No model is loaded: only the parsers are built."""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

import pytest

from lvlm_heat import cli

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
ALWAYS = {"--config", "--help", "-h"}
"""Options every command accepts."""
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
STALE = re.compile(r"METHOD\.md|python -m lvlm_heat\.(?:report|sanity|benchmark|demo\.evaluate)\b")
"""Gone from the project: the method notes outside the repository, and the module entry points that became
``lvlm-heat`` commands."""
PLACEHOLDER = re.compile(r"\.\.\.|<[^>]*>")
"""Parts of an example line a reader fills in; such a line's flags are checked, not its values."""


@functools.cache
def options(command: str) -> frozenset[str]:
    """Every option string of ``command``'s parser (as ``lvlm-heat COMMAND --help`` lists them)."""
    parser = cli.build_parser(cli.command(command), f"lvlm-heat {command}")
    return frozenset(o for action in parser._actions for o in action.option_strings) | ALWAYS


@functools.cache
def every_option() -> frozenset[str]:
    return frozenset().union(*(options(name) for name in cli.COMMANDS))


def invocation(tokens: list[str]) -> tuple[str | None, list[str]] | None:
    """``(command, arguments)`` of a command line that runs the tool, else ``None``.

    Example:
        >>> invocation(["python", "train.py", "--model", "demo"])
        ('explain', ['--model', 'demo'])
        >>> invocation(["OMP_NUM_THREADS=2", "python", "-m", "lvlm_heat", "sanity", "--pairs", "2"])
        ('sanity', ['--pairs', '2'])
        >>> invocation(["lvlm-heat", "--help"])
        (None, ['--help'])
        >>> invocation(["python", "-m", "lvlm_heat.demo.build", "--check-only"]) is None
        True
    """
    for k, token in enumerate(tokens):
        if Path(token).name == "train.py":
            return "explain", tokens[k + 1 :]
        rest = tokens[k + 1 :] if token == "lvlm-heat" else None
        if token == "-m" and tokens[k + 1 : k + 2] == ["lvlm_heat"]:
            rest = tokens[k + 2 :]
        if rest is not None:
            if rest and not rest[0].startswith("-"):
                return rest[0], rest[1:]
            return None, rest
    return None


def problems(line: str, full: bool = True) -> list[str]:
    """What is wrong with a command line of the docs (empty: nothing, or it does not run the tool).

    The command must be one of :data:`lvlm_heat.cli.COMMANDS` and every ``--flag`` one of its parser's
    options. With ``full``, a line without placeholders must also parse and pass the settings' checks, as
    ``lvlm-heat`` itself would parse it.

    Example:
        >>> problems("python train.py --warm_start.depth 0")
        []
        >>> problems("python train.py --optim.warm_start 0.5")
        ['explain has no option --optim.warm_start']
        >>> problems("python -m lvlm_heat COMMAND --help")
        []
        >>> problems("lvlm-heat evaluate --pairs 4")
        ["no command 'evaluate' (commands: explain, report, sanity, benchmark, demo, instruments)"]
    """
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as err:
        return [f"cannot split the line: {err}"]
    found = invocation(tokens)
    if found is None:
        return []
    name, arguments = found
    if name is None:
        extra = [a for a in arguments if a not in ("-h", "--help")]
        return [f"lvlm-heat without a command takes only --help, got {extra}"] if extra else []
    if name.isupper():  # a placeholder: `lvlm-heat COMMAND`
        return []
    if name not in cli.COMMANDS:
        return [f"no command {name!r} (commands: {', '.join(cli.COMMANDS)})"]
    unknown = [a.split("=")[0] for a in arguments if a.startswith("--") and a.split("=")[0] not in options(name)]
    if unknown:
        return [f"{name} has no option {flag}" for flag in unknown]
    if full and not PLACEHOLDER.search(" ".join(arguments)) and not {"--help", "-h", "--print_config"} & set(arguments):
        try:
            cli.parse(arguments, cli.command(name), f"lvlm-heat {name}")
        except Exception as err:  # noqa: BLE001 - any refusal of the parser is the finding
            return [f"{name} refuses {' '.join(arguments)!r}: {' '.join(str(err).split())[:200]}"]
    return []


def fenced_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, command line)`` of every ``bash`` / ``console`` block (continuations joined; in a
    ``console`` block only the ``$`` lines)."""
    lines = []
    for block in FENCE.finditer(text):
        language = block.group(1).lower()
        if language not in ("bash", "console", "sh", "shell"):
            continue
        first = text.count("\n", 0, block.start(2)) + 1
        pending, start = "", 0
        for offset, raw in enumerate(block.group(2).splitlines()):
            if language == "console" and not pending:
                if not raw.startswith("$ "):
                    continue
                raw = raw[2:]
            start = start if pending else first + offset
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            line, pending = pending + raw, ""
            if line.strip():
                lines.append((start, line.strip()))
    return lines


def prose(text: str) -> str:
    """``text`` without its fenced blocks (their lines left empty, so line numbers stay)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def inline_problems(text: str) -> list[str]:
    """Backticked spans of the prose: a command line must run a real command with real flags; a span that
    starts with a flag (``--optim.iterations 10``) must name an option of some command."""
    found = []
    for number, line in enumerate(prose(text).splitlines(), 1):
        for span in INLINE.findall(line):
            span = span.replace("\\|", "|")
            try:
                tokens = shlex.split(span)
            except ValueError:
                tokens = span.split()
            if invocation(tokens) is not None:
                found += [f"line {number}: `{span}`: {p}" for p in problems(span, full=False)]
            elif tokens and tokens[0].startswith("--"):
                flag = tokens[0].split("=")[0].removesuffix(".*")  # `--optim.*`: the group's flags
                if flag not in every_option():
                    found.append(f"line {number}: `{span}`: no command has the option {flag}")
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces as hyphens.

    Example:
        >>> slug("Cambrian-1 and Mini-Gemini tests"), slug("`lvlm-heat demo`: localisation")
        ('cambrian-1-and-mini-gemini-tests', 'lvlm-heat-demo-localisation')
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def link_problems(page: Path) -> list[str]:
    """Relative links of ``page`` (files and images) that do not resolve, and anchors no heading makes."""
    found = []
    for number, line in enumerate(prose(page.read_text()).splitlines(), 1):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                found.append(f"line {number}: {target}: no file {file}")
            elif anchor and file.suffix == ".md":
                anchors = {slug(h) for h in HEADING.findall(prose(file.read_text()))}
                if anchor not in anchors:
                    found.append(f"line {number}: {target}: no heading makes #{anchor} in {file.name}")
    return found


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _command_lines() -> list[tuple[Path, int, str]]:
    return [(page, number, line) for page in PAGES for number, line in fenced_lines(page.read_text())]


COMMAND_LINES = [case for case in _command_lines() if invocation(shlex.split(case[2], comments=True)) is not None]


def test_the_docs_have_command_lines_to_check():
    assert len(PAGES) > 1, "no docs/*.md found"
    pages = {page for page, _, _ in COMMAND_LINES}
    assert README in pages and len(pages) >= 5, sorted(_page_id(p) for p in pages)


@pytest.mark.parametrize("page, number, line", COMMAND_LINES,
                         ids=[f"{_page_id(p)}:{n}" for p, n, _ in COMMAND_LINES])
def test_every_command_line_parses(page, number, line, monkeypatch):
    monkeypatch.chdir(ROOT)  # presets are named relative to the repository, as a reader runs them
    assert problems(line) == [], f"{_page_id(page)} line {number}: {line}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_flag_in_the_prose_exists(page):
    assert inline_problems(page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_relative_link_resolves(page):
    assert link_problems(page) == []


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_no_page_names_what_is_gone(page):
    assert [m.group(0) for m in STALE.finditer(page.read_text())] == []


def test_the_readme_is_short_and_links_every_page():
    text = README.read_text()
    words = len(text.split())
    assert words < 2000, f"README.md has {words} words (wc -w); move detail to docs/"
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in LINK.findall(prose(text))}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


def test_the_readme_states_the_ci_test_command():
    """``.ci/run`` runs the README's test command; the README says which, in these words."""
    assert 'the command `python -m pytest -m "slow or not slow"`' in README.read_text()


def test_the_checks_catch_stale_flags_commands_and_links(tmp_path):
    stale = "python train.py --optim.warm_start 0.5 --optim.warm_windows 7"
    assert problems(stale) == ["explain has no option --optim.warm_start", "explain has no option --optim.warm_windows"]
    assert problems("python -m lvlm_heat evaluate") != []
    assert problems("lvlm-heat benchmark --optim.iterations 0") != []  # parses, but the settings refuse it
    assert problems("lvlm-heat report runs/x --output_dir y") == ["report has no option --output_dir"]
    assert problems("pip install -e '.[test]' --no-deps") == []  # not the tool: not checked
    assert inline_problems("Start it with `--optim.warm_start 0`.") != []
    assert inline_problems("The groups `--optim.*` and `--sanity.*`; not `--warm.*`.") == [
        "line 1: `--warm.*`: no command has the option --warm"]
    assert inline_problems("Start it with `--warm_start.depth 0`, `lvlm-heat demo --pairs 4`.") == []
    assert inline_problems("```bash\npython train.py --optim.warm_start 0\n```\n") == []  # blocks: the other test
    assert fenced_lines("```bash\npython train.py \\\n  --optim.warm_start 0  # a comment\n```\n") == [
        (2, "python train.py    --optim.warm_start 0  # a comment")]
    page = tmp_path / "page.md"
    page.write_text("# Title\n[ok](#title) [gone](missing.md) [anchor](#nowhere) ![img](pic.png)\n")
    assert [p.split(": ")[0] + ": " + p.split(": ")[1] for p in link_problems(page)] == [
        "line 2: missing.md", "line 2: #nowhere", "line 2: pic.png"]
    assert STALE.search("see METHOD.md") and STALE.search("python -m lvlm_heat.demo.evaluate --pairs 4")
