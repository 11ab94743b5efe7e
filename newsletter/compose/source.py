"""Load stage: read an issue folder (manifest, pieces, hero) and validate it against the registry.

Every problem in every file is collected before anything is raised, so an editor sees them all.
Every file an issue names (pieces, the hero image, images in pieces) must resolve inside the
issue's folder, symlinks followed: anything else is an error naming file and line, and is never
read or published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from newsletter.compose import markdown
from newsletter.compose.publication import Publication
from newsletter.compose.schema import Expert, IssueManifest, PieceMeta
from newsletter.compose.validated import validated
from newsletter.core.errors import InputError, Problem
from newsletter.core.yamlsrc import (
    SourceError,
    YamlDoc,
    load_yaml_file,
    read_text,
    split_front_matter,
)


@dataclass(frozen=True)
class PieceImage:
    """An image in a piece: its Markdown reference, its line in the file, its local file."""

    ref: markdown.ImageRef
    line: int
    path: Path | None  # the resolved local file; None for an https:// image


@dataclass
class Piece:
    """One expert piece: front matter, resolved expert, Markdown body."""

    path: Path
    meta: PieceMeta
    expert: Expert
    body: str
    body_line: int
    front: YamlDoc  # the parsed front matter, for the line of any key
    images: list[PieceImage] = field(default_factory=list)
    home: str | None = None  # another issue whose web copy holds its images (a welcome's)


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


def inside(folder: Path, ref: str, base: Path | None = None) -> Path | None:
    """`ref` (relative to `base`, default the folder) resolved with symlinks followed, or None
    when that lands outside `folder`."""
    root = folder.resolve()
    try:
        path = ((base or folder) / ref).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return None
    return path if path.is_relative_to(root) else None


def _outside(folder: Path, ref: str, what: str) -> str:
    return (f"{what} '{ref}' is outside the issue folder {folder.name}/ (or links out of it); "
            "put the file inside the issue folder")


def _image_refs(body: str) -> list[tuple[str, int]]:
    """(src, line offset in the body) of each local image in a piece's Markdown."""
    return [(ref.src, ref.line) for ref in markdown.images(body)
            if ref.src and not is_remote(ref.src)
            and not ref.src.startswith(("data:", "cid:", "mailto:"))]


def load_issue(pub: Publication, folder: Path) -> LoadedIssue:
    """Load and validate the issue in `folder`; raise InputError listing every error found."""
    manifest_path = folder / "issue.yaml"
    try:
        doc = load_yaml_file(manifest_path)
    except SourceError as exc:
        raise InputError(exc.problem) from exc
    manifest, problems = validated(IssueManifest, doc, pub.root)
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
                hero_file = inside(folder, image)
                if hero_file is None:
                    problems.append(Problem(manifest_path, doc.line_of(("hero", "image")),
                                            _outside(folder, image, "hero image")))
                elif not hero_file.is_file():
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
    path = inside(folder, ref)
    if path is None:
        return None, [Problem(manifest_path, line, _outside(folder, ref, "piece file"))]
    if not path.is_file():
        hint = "check the path in pieces:" if not path.exists() else "it is not a file"
        return None, [Problem(manifest_path, line, f"piece file '{ref}' not found; {hint}")]
    try:
        text = read_text(path)
        front, body, body_line = split_front_matter(text, path)
    except SourceError as exc:
        return None, [exc.problem]
    meta, problems = validated(PieceMeta, front, pub.root)
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
    for src, offset in _image_refs(body):
        if inside(folder, src, path.parent) is None:
            problems.append(Problem(path, body_line + offset, _outside(folder, src, "image")))
    if any(p.severity == "error" for p in problems):
        return None, problems
    if not body.strip():
        problems.append(
            Problem(path, body_line, "the piece has no body text below its front matter")
        )
        return None, problems
    images, found = _piece_images(folder, path, body, body_line)
    problems += found
    piece = Piece(
        path=path,
        meta=meta,
        expert=expert,
        body=body,
        body_line=body_line,
        front=front,
        images=images,
    )
    return piece, problems


def _piece_images(
    folder: Path, path: Path, body: str, body_line: int
) -> tuple[list[PieceImage], list[Problem]]:
    """The images of a piece; local ones resolve against the issue folder and must exist."""
    images, problems = [], []
    for ref in markdown.images(body):
        line = body_line + ref.line
        if is_remote(ref.src) or urlsplit(ref.src).scheme:
            images.append(PieceImage(ref, line, None))
            continue
        local = (folder / ref.src).resolve() if ref.src else folder
        if not local.is_file():
            problems.append(
                Problem(
                    path,
                    line,
                    f"image '{ref.src}' not found in {folder.name}/; put the file in the "
                    "issue folder (paths are relative to it) or use an https:// URL",
                )
            )
            continue
        images.append(PieceImage(ref, line, local))
    return images, problems
