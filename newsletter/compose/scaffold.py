"""`newsletter init` and `newsletter new`: create a publication, or a new issue in one."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import yaml

from newsletter.compose.publication import CONFIG_FILE, Publication
from newsletter.compose.render import PACKAGED_TEMPLATES
from newsletter.core.errors import InputError, Problem

SLUG = re.compile(r"^_?[a-z0-9][a-z0-9-]{0,63}$")  # a leading _: a message (the welcome)

#: The scaffold's own placeholder texts: `newsletter check` reports each one left in an issue
#: or in newsletter.yaml as an error (newsletter.checks.draft), so a draft cannot be sent.
DRAFT_ADDRESS = "1 Example Street, Example City 00000"
DRAFT_EXPERT = "jane-doe"
DRAFT_EXPERT_NAME = "Jane Doe"
DRAFT_PREHEADER = "One line that appears after the subject in the inbox"
DRAFT_TITLE = "Headline of the first piece"
DRAFT_BODY = ("Write the piece here in Markdown: paragraphs separated by blank lines, "
              "[links](https://example.org/) and *emphasis*.")

CONFIG_TEMPLATE = f"""\
# Publication settings. See docs/authoring.md for every key.
name: {{name}}
publisher: Example Organisation
from: {{{{name: {{name}}, email: newsletter@example.org}}}}
reply_to: info@example.org
address: {DRAFT_ADDRESS}   # postal address, required by anti-spam law
archive_url: https://news.example.org/archive/
public_url: https://news.example.org/
footer: >-
  The views expressed are the authors' own. [About us](https://example.org/about).
test_recipients: [editor@example.org]
# approval: {{{{required: true, approvers: 1}}}}   # sign-off: `send` waits for `newsletter approve`
# reputation: {{{{min_sample: 1000, bounce_pause: 5%, complaint_pause: 0.1%}}}}   # pauses a send
experts:
  {DRAFT_EXPERT}: {{{{name: {DRAFT_EXPERT_NAME}, role: "Senior Fellow", twitter: janedoe}}}}
"""

SEGMENTS_TEMPLATE = """\
# Segments select active subscribers; see docs/subscribers.md.
segments:
  everyone: {}
"""

GITIGNORE = "dist/\noutbox/\n.newsletter/\n"


def init_publication(root: Path, name: str) -> list[Path]:
    """Scaffold a publication in `root`; refuse to overwrite an existing one."""
    config = root / CONFIG_FILE
    if config.exists():
        raise InputError(Problem(config, None, "a publication already exists here; nothing done"))
    root.mkdir(parents=True, exist_ok=True)
    created = []
    files = {
        config: CONFIG_TEMPLATE.format(name=_yaml_scalar(name)),
        root / "subscribers" / "segments.yaml": SEGMENTS_TEMPLATE,
        root / ".gitignore": GITIGNORE,
    }
    for path, text in files.items():
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        created.append(path)
    (root / "issues").mkdir(exist_ok=True)
    target = root / "templates" / "default"
    if not target.exists():
        shutil.copytree(PACKAGED_TEMPLATES / "default", target)
        created.append(target)
    return created


def _yaml_scalar(value: str) -> str:
    """`value` as a one-line YAML scalar (quoted only when it needs to be)."""
    dumped = yaml.safe_dump(value, default_flow_style=True, width=1000, allow_unicode=True)
    return dumped.removesuffix("...\n").strip()


def new_issue(pub: Publication, slug: str, subject: str = "") -> Path:
    """Create issues/<slug>/ with a manifest and one piece by the first registered expert."""
    if not SLUG.match(slug):
        raise InputError(f"'{slug}' is not a usable slug: use lowercase letters, digits and dashes "
                         "(and a leading _ for a message such as _welcome)")
    folder = pub.root / "issues" / slug
    if folder.exists():
        raise InputError(Problem(folder, None, "this issue already exists; pick another slug"))
    try:
        date = dt.date.fromisoformat(slug[:10])
    except ValueError:
        date = dt.date.today()
    expert = next(iter(pub.config.experts))
    manifest = {
        "subject": subject or f"{pub.config.name}: {date:%d %B %Y}",
        "preheader": DRAFT_PREHEADER,
        "date": date,
        "pieces": ["pieces/first.md"],
    }
    piece = f"---\ntitle: {DRAFT_TITLE}\nexpert: {expert}\n---\n\n{DRAFT_BODY}\n"
    (folder / "pieces").mkdir(parents=True)
    (folder / "issue.yaml").write_text(
        yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    (folder / "pieces" / "first.md").write_text(piece, encoding="utf-8")
    return folder
