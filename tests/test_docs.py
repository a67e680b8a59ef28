"""The documentation names only things that exist.

For README.md and every page of docs/ (each test is parametrised per page):

- every `agent-runtime <subcommand>` (or `python -m agent_runtime <subcommand>`)
  written in code (a code span, or a line of a fenced block) is a subcommand of
  the click group `agent_runtime.cli.cli`, and every `--flag` / `-f` written after
  it in the same span or line is an option of that subcommand;
- every `AGENT_RUNTIME__NAME` is a field of `agent_runtime.config.Settings`, and
  every test-only `AGENT_RUNTIME_NAME` (single underscore) is read by the tests,
  the Makefile or .ci;
- every `make <target>` written in code (not in a `# comment`) is a target of the
  Makefile, and every `python -m <module>` names an importable module;
- every relative link (and `#anchor`) resolves, and every docs page is linked
  from README.md.

Failures name the page, the line and the stale name. Prose is not parsed for
commands ("agent-runtime persistence" is a title, "make sure" is English):
commands are written as code, which is also how they render best.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import click
import pytest

from agent_runtime.cli import cli
from agent_runtime.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
DOC_PAGES = PAGES[1:]

PREFIX = Settings.model_config.get("env_prefix") or ""
TEST_PREFIX = PREFIX.rstrip("_") + "_"  # AGENT_RUNTIME_TEST_*, AGENT_RUNTIME_SOAK_SECONDS


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


# ---------------------------------------------------------------------------
# Reading a page: code segments, prose lines, headings


Problem = tuple[int, str]  # (line, what is stale)


@dataclass(frozen=True)
class Segment:
    line: int
    text: str
    comment: bool = False  # the `# ...` end of a line in a fenced block


_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_COMMENT = re.compile(r"(?:^|\s)#(?=\s|$)")


def _lines(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, line, inside a fenced block) for every line but the fences."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        yield number, line, fenced


def code_segments(text: str) -> list[Segment]:
    """Each line of a fenced block (a trailing `# comment` is a segment of its own)
    and each inline code span elsewhere."""
    segments = []
    for number, line, fenced in _lines(text):
        if fenced:
            match = _COMMENT.search(line)
            if match:
                segments.append(Segment(number, line[: match.start()]))
                segments.append(Segment(number, line[match.end() :], comment=True))
            else:
                segments.append(Segment(number, line))
        else:
            segments.extend(Segment(number, m.group(2)) for m in _CODE_SPAN.finditer(line))
    return segments


def prose_lines(text: str) -> list[Segment]:
    """Lines outside fenced blocks, with their code spans blanked out."""
    return [
        Segment(number, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line))
        for number, line, fenced in _lines(text)
        if not fenced
    ]


def all_lines(text: str) -> list[Segment]:
    return [Segment(n, line) for n, line in enumerate(text.splitlines(), start=1)]


# ---------------------------------------------------------------------------
# (a) agent-runtime commands and their flags

# `agent-runtime` as a command word: after a space, a path (`.venv/bin/`), a quote or
# the start; not inside a name (`/opt/agent-runtime/`) nor a value (systemd's
# `Description=agent-runtime session store`).
_COMMAND = re.compile(
    r"(?:(?<![\w.=-])agent-runtime|(?<![\w.-])python[\d.]*\s+-m\s+agent_runtime)(?=[ \t])"
)
_WORD = re.compile(r"^[a-z][a-z0-9_-]*$")
_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# Where a shell command ends: a pipe, `&&`, `||`, `;`, a redirection, the next command.
_END = re.compile(r"\s(?:\|\|?|&&|>>?|<)\s|;")


@dataclass(frozen=True)
class CommandMention:
    line: int
    path: tuple[str, ...]  # e.g. ("migrate",); () for options of the group itself
    flags: tuple[str, ...]
    text: str


def command_mentions(text: str) -> list[CommandMention]:
    mentions = []
    for segment in code_segments(text):
        starts = [m.end() for m in _COMMAND.finditer(segment.text)]
        for start in starts:
            rest = segment.text[start:]
            following = _COMMAND.search(rest)
            if following:
                rest = rest[: following.start()]
            end = _END.search(rest)
            if end:
                rest = rest[: end.start()]
            rest = _QUOTED.sub(" ", rest)
            words = rest.split()
            path: list[str] = []
            for word in (w.rstrip("`,.;:)") for w in words):
                if not _WORD.match(word):
                    break
                path.append(word)
                if not _is_group(path):
                    break
            if not path and not (words and words[0].startswith("-")):
                continue  # `agent-runtime <command>`, `agent-runtime COMMAND`: a placeholder
            after = " ".join(words[len(path) :])
            flags = tuple(m.group(1) for m in _FLAG.finditer(after))
            mentions.append(CommandMention(segment.line, tuple(path), flags, segment.text.strip()))
    return mentions


def _group_context() -> click.Context:
    return click.Context(cli, info_name="agent-runtime", **cli.context_settings)


def _resolve(path: list[str] | tuple[str, ...]) -> tuple[click.Command | None, click.Context]:
    ctx = _group_context()
    command: click.Command = cli
    for name in path:
        if not isinstance(command, click.Group):
            return None, ctx
        sub = command.get_command(ctx, name)
        if sub is None:
            return None, ctx
        ctx = click.Context(sub, info_name=name, parent=ctx)
        command = sub
    return command, ctx


def _is_group(path: list[str]) -> bool:
    command, _ = _resolve(path)
    return isinstance(command, click.Group)


def command_options(command: click.Command, ctx: click.Context) -> set[str]:
    names: set[str] = set()
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def stale_commands(text: str) -> list[Problem]:
    problems: list[Problem] = []
    for mention in command_mentions(text):
        command, ctx = _resolve(mention.path)
        shown = " ".join(("agent-runtime", *mention.path))
        if command is None:
            available = ", ".join(sorted(cli.list_commands(_group_context())))
            problems.append(
                (
                    mention.line,
                    f"`{shown}` is not an agent-runtime command "
                    f"(have: {available}) in `{mention.text}`",
                )
            )
            continue
        options = command_options(command, ctx)
        for flag in mention.flags:
            if flag not in options:
                problems.append(
                    (
                        mention.line,
                        f"`{shown}` has no option `{flag}` "
                        f"(has: {', '.join(sorted(options))}) in `{mention.text}`",
                    )
                )
    return problems


# ---------------------------------------------------------------------------
# (b) settings and test-only variables

_SETTING = re.compile(rf"(?<!\w){re.escape(PREFIX)}([A-Za-z0-9][A-Za-z0-9_]*)")
_TEST_VARIABLE = re.compile(rf"(?<!\w)({re.escape(TEST_PREFIX)}[A-Za-z0-9][A-Za-z0-9_]*)")


@cache
def _test_sources() -> str:
    """Where test-only variables are read: the tests (not this file), Makefile, .ci."""
    paths = [p for p in (ROOT / "tests").rglob("*.py") if p.resolve() != Path(__file__).resolve()]
    paths += [ROOT / "Makefile", *(p for p in (ROOT / ".ci").glob("*") if p.is_file())]
    return "\n".join(p.read_text(encoding="utf-8") for p in paths)


def stale_settings(text: str) -> list[Problem]:
    fields = set(Settings.model_fields)
    problems: list[Problem] = []
    for segment in all_lines(text):
        for match in _SETTING.finditer(segment.text):  # not `AGENT_RUNTIME__*`
            name = match.group(1).rstrip("_")
            if name.lower() not in fields:
                problems.append(
                    (
                        segment.line,
                        f"`{PREFIX}{name}` is not a setting "
                        f"(agent_runtime.config.Settings has no field `{name.lower()}`)",
                    )
                )
    return problems


def stale_test_variables(text: str) -> list[Problem]:
    problems: list[Problem] = []
    for segment in all_lines(text):
        for match in _TEST_VARIABLE.finditer(segment.text):
            name = match.group(1).rstrip("_")
            if not re.search(rf"(?<!\w){re.escape(name)}(?!\w)", _test_sources()):
                problems.append(
                    (segment.line, f"`{name}` is read nowhere in tests/, Makefile or .ci/")
                )
    return problems


# ---------------------------------------------------------------------------
# (c) make targets and python modules

_MAKE = re.compile(r"(?<![\w./-])make[ \t]+(.*)")
_TARGET_LINE = re.compile(r"^([A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*::?(?!=)")
_PYTHON_MODULE = re.compile(r"(?<![\w.-])python[\d.]*\s+-m\s+([A-Za-z_][\w.]*)")


@cache
def make_targets() -> frozenset[str]:
    targets: set[str] = set()
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        match = _TARGET_LINE.match(line)
        if match:
            targets.update(name for name in match.group(1).split() if not name.startswith("."))
    return frozenset(targets)


def stale_make_targets(text: str) -> list[Problem]:
    problems: list[Problem] = []
    for segment in code_segments(text):
        if segment.comment:
            continue  # "# make sure ..." is English
        for match in _MAKE.finditer(segment.text):
            args = match.group(1)
            end = _END.search(args)
            if end:
                args = args[: end.start()]
            for word in _QUOTED.sub(" ", args).split():
                if "=" in word or word.startswith("-"):
                    continue  # `name=...`, `PYTEST_ARGS=...`, make's own options
                if not _WORD.match(word):
                    break
                if word not in make_targets():
                    problems.append(
                        (
                            segment.line,
                            f"`make {word}` is not a Makefile target "
                            f"(have: {', '.join(sorted(make_targets()))})",
                        )
                    )
    return problems


def stale_python_modules(text: str) -> list[Problem]:
    problems: list[Problem] = []
    for segment in code_segments(text):
        for match in _PYTHON_MODULE.finditer(segment.text):
            module = match.group(1).rstrip(".")
            try:
                found = importlib.util.find_spec(module) is not None
            except ImportError:
                found = False
            # A top-level folder of the repository (`benchmarks`), whatever sys.path is.
            source = ROOT.joinpath(*module.split("."))
            found = found or source.with_suffix(".py").is_file() or source.is_dir()
            if not found:
                problems.append((segment.line, f"`python -m {module}`: no such module"))
    return problems


# ---------------------------------------------------------------------------
# (d) links

_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_EXTERNAL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for _, line, fenced in _lines(text):
        match = None if fenced else _HEADING.match(line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every relative link and same-page anchor."""
    return [
        (segment.line, match.group(1))
        for segment in prose_lines(text)
        for match in _LINK.finditer(segment.text)
        if not _EXTERNAL.match(match.group(1))
    ]


def resolve_link(page: Path, target: str) -> Path:
    path = target.split("#", 1)[0]
    return (page.parent / path).resolve() if path else page.resolve()


def broken_links(text: str, page: Path) -> list[Problem]:
    problems: list[Problem] = []
    for line, target in links(text):
        destination = resolve_link(page, target)
        same_page = target.startswith("#")
        if not same_page and not destination.exists():
            problems.append((line, f"link `{target}`: no such file {destination}"))
            continue
        if "#" in target and destination.suffix == ".md":
            anchor = target.split("#", 1)[1]
            destination_text = text if same_page else destination.read_text("utf-8")
            if anchor not in anchors(destination_text):
                problems.append(
                    (line, f"link `{target}`: {destination.name} has no heading #{anchor}")
                )
    return problems


# ---------------------------------------------------------------------------
# The pages


def report(page: str, problems: list[Problem]) -> str:
    """One line per problem, `page:line: what`, in line order."""
    return f"{page}: stale documentation\n" + "\n".join(
        f"  {page}:{line}: {what}" for line, what in sorted(problems)
    )


def fail_on(page: Path, problems: list[Problem]) -> None:
    if problems:
        pytest.fail(report(page_id(page), problems), pytrace=False)


def _read(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def test_there_are_docs_pages():
    assert DOC_PAGES, "docs/*.md: no pages found"
    assert PREFIX == "AGENT_RUNTIME__", f"the settings' env prefix changed to {PREFIX!r}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_agent_runtime_commands_and_flags_exist(page: Path):
    problems = stale_commands(_read(page))
    fail_on(page, problems)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_settings_exist(page: Path):
    problems = stale_settings(_read(page))
    fail_on(page, problems)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_test_only_variables_are_read_by_the_tests(page: Path):
    problems = stale_test_variables(_read(page))
    fail_on(page, problems)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_make_targets_exist(page: Path):
    problems = stale_make_targets(_read(page))
    fail_on(page, problems)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_python_modules_exist(page: Path):
    problems = stale_python_modules(_read(page))
    fail_on(page, problems)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_resolve(page: Path):
    problems = broken_links(_read(page), page)
    fail_on(page, problems)


@pytest.mark.parametrize("page", DOC_PAGES, ids=page_id)
def test_docs_page_is_linked_from_readme(page: Path):
    linked = {resolve_link(README, target) for _, target in links(_read(README))}
    if page.resolve() not in linked:
        pytest.fail(
            f"README.md: docs page {page_id(page)} is not linked from README.md "
            "(add it to the Documentation list)",
            pytrace=False,
        )


def test_readme_shows_the_test_command():
    """CI (.ci/run) runs the README's test command: keep it visible, as code."""
    lines = [segment.text.strip() for segment in code_segments(_read(README))]
    assert any(line == "make test" or line.startswith("make test ") for line in lines), (
        "README.md: the test command `make test` is not shown in a code block"
    )


# ---------------------------------------------------------------------------
# The checkers catch what they are for

STALE_PAGE = """\
# A page

Run `agent-runtime frobnicate` first.

```bash
agent-runtime migrate --frob         # a flag migrate lacks
AGENT_RUNTIME__NO_SUCH_SETTING=1 make no-such-target
python -m agent_runtime.no_such_module
```

`python -m agent_runtime frobnicate-too`, `AGENT_RUNTIME_TEST_NO_SUCH_VARIABLE=1`.
See [nowhere](no-such-page.md) and [no heading](#no-such-heading).
"""

GOOD_PAGE = """\
# A page

## Serving it

`agent-runtime serve --workers 4`, `agent-runtime migrate [--check]` and
`agent-runtime cleanup [--idle-hours --skip STEP --dry-run]`; `agent-runtime --help`.
`agent-runtime` alone, `agent-runtime <command> --help` and `agent-runtime COMMAND` are
placeholders; `AGENT_RUNTIME__*` is the prefix; `AGENT_RUNTIME_TEST_BACKENDS` is real.

```ini
Description=agent-runtime session store
ExecStart=/opt/agent-runtime/.venv/bin/agent-runtime serve --port 8000
```

```bash
AGENT_RUNTIME__DB_URL=sqlite:// .venv/bin/agent-runtime check | grep --count ok
make test PYTEST_ARGS="-k approvals -x"   # make sure it passes: `agent-runtime check`
make migration name=add_x && python -m agent_runtime migrate --check
```

See [serving](#serving-it) and [the README](../README.md#documentation).
"""


def test_checkers_flag_every_stale_name_with_its_line():
    page = DOCS / "stale.md"  # in memory: links resolve from docs/
    problems = (
        stale_commands(STALE_PAGE)
        + stale_settings(STALE_PAGE)
        + stale_test_variables(STALE_PAGE)
        + stale_make_targets(STALE_PAGE)
        + stale_python_modules(STALE_PAGE)
        + broken_links(STALE_PAGE, page)
    )
    expected = [
        (3, "`agent-runtime frobnicate`"),
        (6, "no option `--frob`"),
        (7, "`AGENT_RUNTIME__NO_SUCH_SETTING`"),
        (7, "`make no-such-target`"),
        (8, "agent_runtime.no_such_module"),
        (11, "`agent-runtime frobnicate-too`"),
        (11, "`AGENT_RUNTIME_TEST_NO_SUCH_VARIABLE`"),
        (12, "no-such-page.md"),
        (12, "#no-such-heading"),
    ]
    for line, name in expected:
        assert any(at == line and name in what for at, what in problems), (line, name, problems)
    assert len(problems) == len(expected), problems


def test_checkers_accept_real_names_and_placeholders():
    page = DOCS / "good.md"
    problems = (
        stale_commands(GOOD_PAGE)
        + stale_settings(GOOD_PAGE)
        + stale_test_variables(GOOD_PAGE)
        + stale_make_targets(GOOD_PAGE)
        + stale_python_modules(GOOD_PAGE)
        + broken_links(GOOD_PAGE, page)
    )
    assert problems == []
    mentions = {(m.line, m.path, m.flags) for m in command_mentions(GOOD_PAGE)}
    assert mentions == {
        (5, ("serve",), ("--workers",)),
        (5, ("migrate",), ("--check",)),
        (6, ("cleanup",), ("--idle-hours", "--skip", "--dry-run")),
        (6, (), ("--help",)),
        (12, ("serve",), ("--port",)),
        (16, ("check",), ()),  # `| grep --count` is another command
        (17, ("check",), ()),  # in the comment
        (18, ("migrate",), ("--check",)),
    }


def test_a_stale_command_in_a_copy_of_a_real_page_names_page_and_line(tmp_path):
    copy = tmp_path / "README.md"
    text = _read(README) + "\n```bash\nagent-runtime frobnicate --now\n```\n"
    copy.write_text(text, encoding="utf-8")
    message = report("README.md", stale_commands(copy.read_text(encoding="utf-8")))
    line = len(text.splitlines()) - 1
    assert f"README.md:{line}: `agent-runtime frobnicate` is not" in message, message
