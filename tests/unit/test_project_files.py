"""The project files a user looks for: the licence is Apache-2.0's own text, the changelog
keeps Keep a Changelog's form (which the release workflow reads), and the links in these
files lead somewhere."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# SHA-256 of the Apache License 2.0 as the Apache Software Foundation publishes it
# (https://www.apache.org/licenses/LICENSE-2.0.txt, also Debian's common-licenses/Apache-2.0).
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
CHANGE_TYPES = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
RELEASE_HEADING = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$")


def test_the_licence_is_the_apache_2_0_text_unaltered():
    text = (REPO / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == APACHE_2_0_SHA256, (
        "LICENSE is not the Apache-2.0 text: copy it unchanged from "
        "/usr/share/common-licenses/Apache-2.0 or apache.org")


def test_the_changelog_has_keep_a_changelogs_form():
    lines = (REPO / "CHANGELOG.md").read_text().splitlines()
    assert lines[0] == "# Changelog"
    releases = [line for line in lines if line.startswith("## ")]
    assert releases and releases[0] == "## [Unreleased]", "the first section must be ## [Unreleased]"
    for heading in releases[1:]:
        assert RELEASE_HEADING.match(heading), f"{heading!r}: a release is headed ## [X.Y.Z] - YYYY-MM-DD"
    dates = [RELEASE_HEADING.match(h).group(2) for h in releases[1:]]
    assert dates == sorted(dates, reverse=True), "releases go newest first"
    for line in lines:
        if line.startswith("### "):
            assert line[4:] in CHANGE_TYPES, f"{line!r}: a change is one of {sorted(CHANGE_TYPES)}"
    labels = {line[1:line.index("]")] for line in lines if re.match(r"^\[[^\]]+\]: https://", line)}
    for heading in releases:
        label = heading[4:heading.index("]")]
        assert label in labels, f"{heading}: no link reference [{label}]: at the end of the file"


@pytest.mark.parametrize("name", ["SECURITY.md", "CHANGELOG.md", "docs/api-stability.md", "docs/releasing.md"])
def test_relative_links_lead_to_files_that_exist(name):
    page = REPO / name
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    local = [t for t in targets if "://" not in t]
    assert local, f"{name} links to none of the project's files"
    for target in local:
        assert (page.parent / target).exists(), f"{name} links to {target}, which does not exist"
