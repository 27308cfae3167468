"""The docs stay true: the command-line page is the parser's, and every relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spiking_maelstrom.cli import cli_reference

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_command_line_page_is_generated_from_the_parser():
    page = ROOT / "docs" / "cli.md"
    assert page.read_text() == cli_reference(), (
        'docs/cli.md is stale: python -c "from spiking_maelstrom.cli import cli_reference; '
        "print(cli_reference(), end='')\" > docs/cli.md"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" not in target:
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
