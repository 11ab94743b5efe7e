"""The sample publication's own templates/default/: a copy of the packaged one, in use."""

from __future__ import annotations

import filecmp
from pathlib import Path

from newsletter.compose import build_issue
from newsletter.compose.publication import Publication
from newsletter.compose.render import PACKAGED_TEMPLATES, template_dir
from tests.compose.helpers import SAMPLE, replace_in
from tests.conftest import ROOT


def test_sample_keeps_a_copy_of_the_packaged_default() -> None:
    """The sample shows the packaged template; after editing one, copy it to the other."""
    own, packaged = ROOT / "templates" / "default", PACKAGED_TEMPLATES / "default"
    compared = filecmp.dircmp(own, packaged)
    assert compared.left_only == compared.right_only == []
    assert compared.diff_files == [], (
        "templates/default/ differs from newsletter/templates/default/: copy the packaged "
        "template over the sample's (cp -r newsletter/templates/default templates/)"
    )


def test_the_build_uses_the_publication_template(publication: Path) -> None:
    pub = Publication.load(publication)
    assert template_dir(pub) == publication / "templates" / "default"
    before = build_issue(pub, SAMPLE)
    replace_in(
        publication / "templates" / "default" / "email.mjml.j2",
        "h2.headline { font-family: {{ fonts.sans }};",
        "h2.headline { font-family: Verdana, sans-serif;",
    )
    after = build_issue(pub, SAMPLE)
    assert "Verdana" not in before.html and "Verdana, sans-serif" in after.html
    assert after.content_hash != before.content_hash
