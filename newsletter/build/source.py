"""Load stage: read an issue folder (manifest, pieces, hero) and validate it against the registry.

Every problem in every file is collected before anything is raised, so an editor sees them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from newsletter.build.publication import Publication
from newsletter.build.schema import Expert, IssueManifest, PieceMeta, validate
from newsletter.core.errors import InputError, Problem
from newsletter.core.yamlsrc import (
    SourceError,
    YamlDoc,
    load_yaml_file,
    read_text,
    split_front_matter,
)


@dataclass
class Piece:
    """One expert piece: front matter, resolved expert, Markdown body."""

    path: Path
    meta: PieceMeta
    expert: Expert
    body: str
    body_line: int
    front: YamlDoc  # the parsed front matter, for the line of any key


@dataclass
class LoadedIssue:
    """A validated issue, ready to render."""

    slug: str
    folder: Path
    manifest: IssueManifest
    pieces: list[Piece]
    hero_file: Path | None
    source: YamlDoc  # the parsed issue.yaml, for the line of any key
    warnings: list[Problem] = field(default_factory=list)


def is_remote(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


def load_issue(pub: Publication, folder: Path) -> LoadedIssue:
    """Load and validate the issue in `folder`; raise InputError listing every error found."""
    manifest_path = folder / "issue.yaml"
    try:
        doc = load_yaml_file(manifest_path)
    except SourceError as exc:
        raise InputError(exc.problem) from exc
    manifest, problems = validate(IssueManifest, doc)
    pieces: list[Piece] = []
    hero_file = None
    if isinstance(doc.data, dict):
        refs = doc.data.get("pieces")
        if isinstance(refs, list):
            seen: set[str] = set()
            for index, ref in enumerate(refs):
                if not isinstance(ref, str):
                    continue
                line = doc.line_of(("pieces", index))
                if ref in seen:
                    problems.append(
                        Problem(manifest_path, line, f"piece '{ref}' is listed twice", "warning")
                    )
                seen.add(ref)
                piece, found = _load_piece(pub, folder, ref, manifest_path, line)
                problems += found
                if piece:
                    pieces.append(piece)
        hero = doc.data.get("hero")
        if isinstance(hero, dict) and isinstance(hero.get("image"), str):
            image = hero["image"]
            if not is_remote(image):
                hero_file = (folder / image).resolve()
                if not hero_file.is_file():
                    problems.append(
                        Problem(
                            manifest_path,
                            doc.line_of(("hero", "image")),
                            f"hero image '{image}' not found in {folder.name}/; "
                            "put the file there or use an https:// URL",
                        )
                    )
    errors = [p for p in problems if p.severity == "error"]
    if errors or manifest is None:
        raise InputError(sorted(problems, key=_order))
    return LoadedIssue(
        slug=folder.name,
        folder=folder,
        manifest=manifest,
        pieces=pieces,
        hero_file=hero_file,
        source=doc,
        warnings=problems,
    )


def _order(problem: Problem) -> tuple[str, int]:
    return (str(problem.file), problem.line or 0)


def _load_piece(
    pub: Publication, folder: Path, ref: str, manifest_path: Path, line: int
) -> tuple[Piece | None, list[Problem]]:
    path = (folder / ref).resolve()
    if not path.is_file():
        hint = "check the path in pieces:" if not path.exists() else "it is not a file"
        return None, [Problem(manifest_path, line, f"piece file '{ref}' not found; {hint}")]
    try:
        text = read_text(path)
        front, body, body_line = split_front_matter(text, path)
    except SourceError as exc:
        return None, [exc.problem]
    meta, problems = validate(PieceMeta, front)
    if meta is None:
        return None, problems
    expert = pub.config.experts.get(meta.expert)
    if expert is None:
        known = ", ".join(sorted(pub.config.experts)) or "none"
        problems.append(
            Problem(
                path,
                front.line_of(("expert",)),
                f"unknown expert '{meta.expert}'; add it under experts: in newsletter.yaml "
                f"(known: {known})",
            )
        )
        return None, problems
    if not body.strip():
        problems.append(
            Problem(path, body_line, "the piece has no body text below its front matter")
        )
        return None, problems
    piece = Piece(path=path, meta=meta, expert=expert, body=body, body_line=body_line, front=front)
    return piece, problems
