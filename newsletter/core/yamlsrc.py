"""YAML loading that remembers the line of every key, so problems can name file and line.

Every YAML the tool reads goes through here (`parse_yaml` with lines, `load_plain` without), and
is composed by `_compose` with two limits, so a hostile file costs bounded time and memory:
aliases may add at most MAX_ALIAS_NODES nodes in all (a "billion laughs" file is refused the
moment its expansion passes the budget, before anything is built) and collections may nest at
most MAX_DEPTH deep; a recursive alias is refused. Each refusal names the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError

from newsletter.core.errors import Problem

Loc = tuple[str | int, ...]
#: nodes that aliases may add to a document, all aliases together (the document's own nodes
#: are bounded by its length)
MAX_ALIAS_NODES = 10_000
#: how deep sequences and mappings may nest
MAX_DEPTH = 64


@dataclass
class YamlDoc:
    """Parsed YAML data plus a map from key path to 1-based line number."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    line_offset: int = 0  # for front matter: lines before the YAML block

    def line_of(self, loc: Loc) -> int:
        """The line of the deepest known key along `loc` (1 if none is known)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)


class SourceError(Exception):
    """A source file could not be read or parsed; carries the Problem to report."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


class _Builder:
    """Turns a composed node tree into Python data, recording the line of every key."""

    def __init__(self, lines: dict[Loc, int], offset: int):
        self.lines, self.offset = lines, offset
        self.loader = yaml.SafeLoader("")  # one constructor for the whole document

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1 + self.offset)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.scalar(key_node)
                child = (*loc, key if isinstance(key, (str, int)) else str(key))
                self.lines[child] = key_node.start_mark.line + 1 + self.offset
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        """Construct a scalar (or, for odd keys, any node) with PyYAML's safe rules."""
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, yaml.YAMLError) as exc:
            raise yaml.MarkedYAMLError(
                problem=f"cannot read value {node.value!r} ({exc})", problem_mark=node.start_mark
            ) from exc


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser, when built


def load_plain(text: str) -> Any:
    """The data of a YAML text, parsed by libyaml when available and within the limits,
    without line tracking (for files read often whose errors are reported elsewhere). Raises
    yaml.YAMLError (LimitError over a limit)."""
    node = _compose(text)
    if node is None:
        return None
    return yaml.SafeLoader("").construct_document(node)


class LimitError(yaml.MarkedYAMLError):
    """A document over one of the limits (MAX_ALIAS_NODES, MAX_DEPTH) or with a recursive
    alias."""


@dataclass
class _Open:
    """A sequence or mapping being composed."""

    node: yaml.CollectionNode
    anchor: str | None
    size: int = 1  # nodes in it so far, aliases expanded
    key: yaml.Node | None = None  # a mapping's key waiting for its value


def _compose_events(loader: Any) -> yaml.Node | None:
    """The node tree of the one document `loader` parses, built from its events without
    recursion, within the limits (LimitError) and with PyYAML's composer's own errors."""
    loader.get_event()  # stream start
    if loader.check_event(yaml.StreamEndEvent):
        loader.get_event()
        return None
    document = loader.get_event()
    anchors: dict[str, tuple[yaml.Node, int | None]] = {}
    stack: list[_Open] = []
    expanded = 0
    root: yaml.Node | None = None
    while root is None:
        event = loader.get_event()
        if isinstance(event, yaml.AliasEvent):
            found = anchors.get(event.anchor)
            if found is None:
                raise ComposerError(None, None, f"found undefined alias {event.anchor!r}",
                                    event.start_mark)
            item, size = found
            if size is None:
                raise LimitError(problem=f"alias {event.anchor!r} refers to a collection that "
                                         "contains it (a recursive alias)",
                                 problem_mark=event.start_mark)
            expanded += size
            if expanded > MAX_ALIAS_NODES:
                raise LimitError(problem=f"aliases expand this document by more than "
                                         f"{MAX_ALIAS_NODES:,} nodes (refused: a file built "
                                         "to exhaust memory?); write the values out",
                                 problem_mark=event.start_mark)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            done = stack.pop()
            done.node.end_mark = event.end_mark
            item, size = done.node, done.size
            if done.anchor is not None:
                anchors[done.anchor] = (item, size)
        else:
            anchor = event.anchor
            if anchor is not None and anchor in anchors:
                raise ComposerError(f"found duplicate anchor {anchor!r}; first occurrence",
                                    anchors[anchor][0].start_mark, "second occurrence",
                                    event.start_mark)
            tag = event.tag
            if isinstance(event, yaml.ScalarEvent):
                if tag is None or tag == "!":
                    tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                item = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark,
                                       style=event.style)
                size = 1
                if anchor is not None:
                    anchors[anchor] = (item, 1)
            else:
                sequence = isinstance(event, yaml.SequenceStartEvent)
                kind = yaml.SequenceNode if sequence else yaml.MappingNode
                if tag is None or tag == "!":
                    tag = loader.resolve(kind, None, event.implicit)
                if len(stack) >= MAX_DEPTH:
                    raise LimitError(problem=f"nested more than {MAX_DEPTH} levels deep",
                                     problem_mark=event.start_mark)
                collection = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
                if anchor is not None:
                    anchors[anchor] = (collection, None)  # open: an alias to it is recursive
                stack.append(_Open(collection, anchor))
                continue
        if not stack:
            root = item
            break
        parent = stack[-1]
        parent.size += size
        if isinstance(parent.node, yaml.SequenceNode):
            parent.node.value.append(item)
        elif parent.key is None:
            parent.key = item
        else:
            parent.node.value.append((parent.key, item))
            parent.key = None
    loader.get_event()  # document end
    if not loader.check_event(yaml.StreamEndEvent):
        extra = loader.get_event()
        raise ComposerError("expected a single document in the stream", document.start_mark,
                            "but found another document", extra.start_mark)
    return root


def _compose_with(text: str, loader_class: Any) -> yaml.Node | None:
    loader = loader_class(text)
    try:
        return _compose_events(loader)
    finally:
        loader.dispose()


def _compose(text: str) -> yaml.Node | None:
    """The node tree of `text`, parsed by libyaml when available, within the limits; on a
    syntax error, parsed again by PyYAML's own parser so the message (and its line) is the
    same everywhere."""
    try:
        return _compose_with(text, _FAST_LOADER)
    except LimitError:
        raise
    except yaml.YAMLError:
        if _FAST_LOADER is yaml.SafeLoader:
            raise
    return _compose_with(text, yaml.SafeLoader)


def parse_yaml(text: str, path: Path, line_offset: int = 0) -> YamlDoc:
    """Parse `text`; raise SourceError naming file and line on a syntax error or bad value."""
    doc = YamlDoc(path=path, data=None, line_offset=line_offset)
    try:
        node = _compose(text)
        if node is None:
            doc.lines[()] = 1 + line_offset
            return doc
        doc.data = _Builder(doc.lines, line_offset).build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = (mark.line + 1 + line_offset) if mark else None
        reason = exc.problem or str(exc)
        if isinstance(exc, LimitError) or reason.startswith("cannot read value"):
            raise SourceError(Problem(path, line, reason)) from exc
        raise SourceError(
            Problem(path, line, f"YAML syntax error: {reason}; check indentation and quoting")
        ) from exc
    except yaml.YAMLError as exc:
        raise SourceError(Problem(path, None, f"YAML error: {exc}")) from exc
    return doc


def read_text(path: Path) -> str:
    """Read a UTF-8 source file; raise SourceError naming the file on failure."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SourceError(Problem(path, None, "file not found")) from exc
    except UnicodeDecodeError as exc:
        raise SourceError(
            Problem(path, None, f"not UTF-8 text (byte {exc.start}); save the file as UTF-8")
        ) from exc
    except OSError as exc:
        raise SourceError(Problem(path, None, f"cannot read file: {exc.strerror}")) from exc


def load_yaml_file(path: Path) -> YamlDoc:
    """Read and parse a YAML file. Raises SourceError on any read or syntax problem."""
    return parse_yaml(read_text(path), path)


def split_front_matter(text: str, path: Path) -> tuple[YamlDoc, str, int]:
    """Split a Markdown file into (front matter doc, body, first body line number)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise SourceError(
            Problem(
                path,
                1,
                "missing YAML front matter; start the file with a '---' line, "
                "then title: and expert:, then '---'",
            )
        )
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            doc = parse_yaml("".join(lines[1:i]), path, line_offset=1)
            doc.lines.setdefault((), 1)
            if doc.data is None:
                doc.lines[()] = 1
            return doc, "".join(lines[i + 1 :]), i + 2
    raise SourceError(Problem(path, 1, "front matter is not closed; add a '---' line after it"))
