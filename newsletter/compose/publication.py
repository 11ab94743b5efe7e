"""A publication: the folder holding newsletter.yaml, issues/, templates/ and subscribers/.

The validated newsletter.yaml is kept under `.newsletter/cache/valid/`, keyed by the file's text
and path (`compose.validated`): most commands read it back instead of parsing and validating it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from newsletter.compose.schema import PublicationConfig, validate
from newsletter.compose.validated import remembered
from newsletter.core.errors import InputError, Problem
from newsletter.core.settings import Settings
from newsletter.core.yamlsrc import SourceError, parse_yaml, read_text

CONFIG_FILE = "newsletter.yaml"


@dataclass
class Publication:
    """Where a publication lives, its validated settings and its environment settings."""

    root: Path
    config: PublicationConfig
    warnings: list[Problem] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path) -> Publication:
        """Load and validate newsletter.yaml; raise InputError listing every problem."""
        config, problems = load_config(root)
        errors = [p for p in problems if p.severity == "error"]
        if errors or config is None:
            raise InputError(problems)
        return cls(root=root.resolve(), config=config, warnings=problems)

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env(self.root)

    def issue_dir(self, issue: str | Path) -> Path:
        """Resolve ISSUE given as a folder path or a slug under issues/."""
        path = Path(issue)
        for candidate in (path, self.root / path, self.root / "issues" / str(issue)):
            if (candidate / "issue.yaml").is_file():
                return candidate.resolve()
        raise InputError(
            Problem(
                self.root / "issues" / str(issue),
                None,
                f"no issue '{issue}' found (expected issues/{issue}/issue.yaml); "
                "run `newsletter new SLUG` to start one",
            )
        )

    def dist_dir(self, slug: str) -> Path:
        return self.root / "dist" / slug


def is_message(slug: str) -> bool:
    """A folder under issues/ whose name starts with `_` holds a message (the welcome,
    newsletter.compose.welcome), not an issue: the archive, the feed, the preference page's
    languages and "the latest issue" leave it out."""
    return slug.startswith("_")


def load_config(root: Path) -> tuple[PublicationConfig | None, list[Problem]]:
    """Validate newsletter.yaml under `root`, returning the model (or None) and all problems."""
    path = root / CONFIG_FILE
    if not path.exists():
        return None, [
            Problem(path, None, "no newsletter.yaml here; run `newsletter init` or pass -C DIR")
        ]
    try:
        text = read_text(path)
        return remembered(PublicationConfig, root, (str(path), text),
                          lambda: validate(PublicationConfig, parse_yaml(text, path)))
    except SourceError as exc:
        return None, [exc.problem]
