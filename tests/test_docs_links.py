"""The documentation's links and recorded commands point at things that exist.

* every relative link or image in the README and in docs/ (results pages included) names an
  existing file, and a ``#section`` anchor into a Markdown page names one of its headings;
* every command recorded on a results page (``docs/results/*.md``) still parses: ``vpf``
  commands with the current command line, and the protocol files and benchmark scripts it
  names exist.  (Those commands run for minutes to hours, so they are not re-run here.)
"""

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md"] + sorted((REPO / "docs").rglob("*.md"))
RESULTS = sorted((REPO / "docs" / "results").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page):
    text = FENCE.sub("", page.read_text())
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def _links(page):
    text = FENCE.sub("", page.read_text())
    return [a or b for a, b in LINK.findall(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_point_at_existing_files_and_headings(page):
    bad = []
    for target in _links(page):
        if re.match(r"^[a-z]+:", target):        # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading '#{anchor}' in {dest.name}")
    assert not bad, f"{page.relative_to(REPO)}: broken links:\n" + "\n".join(bad)


def _code(page):
    """Fenced blocks, and indented (4-space) blocks, of a page."""
    text = page.read_text()
    yield from FENCE.findall(text)
    indented = re.findall(r"(?:^(?: {4}|\t).*\n?)+", FENCE.sub("", text), re.M)
    yield from (re.sub(r"^(?: {4}|\t)", "", b, flags=re.M) for b in indented)


def _commands(page):
    for block in _code(page):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            try:
                words = shlex.split(line)
            except ValueError:
                continue
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):   # VAR=value prefixes
                words = words[1:]
            if words:
                yield line, words


@pytest.mark.parametrize("page", RESULTS, ids=lambda p: p.name)
def test_recorded_commands_still_parse(page):
    from vpf_spiking.cli import build_parser

    checked = 0
    for line, words in _commands(page):
        program = Path(words[0]).name
        if program == "vpf":
            args = words[1:]
            try:
                build_parser().parse_args(args)
            except SystemExit as exc:
                pytest.fail(f"{page.name}: recorded command no longer parses (exit {exc.code}): {line}")
            checked += 1
        elif program.startswith("python") and len(words) > 1 and words[1].endswith(".py"):
            assert (REPO / words[1]).exists(), f"{page.name}: {words[1]} does not exist ({line})"
            checked += 1
        elif program == "bash" and len(words) > 1:
            assert (REPO / words[1]).exists(), f"{page.name}: {words[1]} does not exist ({line})"
            checked += 1
        for word in words:
            if re.match(r"^(protocols|networks|benchmarks)/[\w.-]+$", word):
                assert (REPO / word).exists(), f"{page.name}: {word} does not exist ({line})"
    assert checked, f"{page.name} records no command that produced it"
