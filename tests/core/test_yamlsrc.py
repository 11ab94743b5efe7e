"""Every YAML the tool reads is read within limits: an alias bomb, deep nesting and a recursive
alias are refused with file and line and exit 2, in bounded memory and time; ordinary YAML
(anchors and aliases included) reads exactly as PyYAML reads it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.yamlsrc import SourceError, load_plain, parse_yaml
from tests.conftest import examples
from tests.measured import measured_cli

MAX_ALIAS_NODES = 10_000  # newsletter.core.yamlsrc's limits (checked below)
MAX_DEPTH = 64


def bomb(levels: int = 9, under: str = "") -> str:
    """The 'billion laughs' document: each level nine aliases of the one before (9**9 leaves
    once expanded), under the key `under` when given."""
    lines = [f"{under}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n in range(1, levels):
        lines.append(f"{under}l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def deep(depth: int) -> str:
    """A mapping holding `depth` nested sequences: depth + 1 levels."""
    return "x: " + "[" * depth + "]" * depth + "\n"


def cli(root: Path, *args: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run the CLI in a process of its own: (result, seconds, peak MB)."""
    started = time.perf_counter()
    done, peak = measured_cli(root, *args)
    return done, time.perf_counter() - started, peak


@pytest.mark.parametrize("where", ["segments", "issue", "publication"])
def test_an_alias_bomb_is_refused_with_file_and_line_in_bounded_memory(publication: Path,
                                                                     where: str) -> None:
    if where == "segments":
        path, args = publication / "subscribers" / "segments.yaml", ("segments",)
        path.write_text(path.read_text(encoding="utf-8") + bomb(), encoding="utf-8")
    elif where == "issue":
        path, args = publication / "issues" / "2026-11-24" / "issue.yaml", ("check", "2026-11-24")
        path.write_text(path.read_text(encoding="utf-8") + bomb(), encoding="utf-8")
    else:
        path, args = publication / "newsletter.yaml", ("check", "2026-11-24")
        path.write_text(path.read_text(encoding="utf-8") + bomb(), encoding="utf-8")
    done, seconds, peak = cli(publication, *args)
    print(f"\n{where}: alias bomb refused in {seconds:.2f} s, peak {peak:.0f} MB")
    assert done.returncode == 2, done.stdout + done.stderr
    output = done.stdout + done.stderr  # `check` reports on stdout, other commands on stderr
    line = path.read_text(encoding="utf-8").splitlines().index(bomb().splitlines()[4]) + 1
    assert f"{path.name}:{line}:" in output, output
    assert f"more than {MAX_ALIAS_NODES:,} nodes" in output
    assert "Traceback" not in output and "unexpected error" not in output
    assert peak < 200


@pytest.mark.parametrize("depth", [MAX_DEPTH, 500, 100_000])
def test_deep_nesting_is_refused_with_file_and_line(publication: Path, depth: int) -> None:
    path = publication / "subscribers" / "segments.yaml"
    path.write_text(path.read_text(encoding="utf-8") + deep(depth), encoding="utf-8")
    line = len(path.read_text(encoding="utf-8").splitlines())
    done, seconds, peak = cli(publication, "segments")
    print(f"\n{depth} levels refused in {seconds:.2f} s, peak {peak:.0f} MB")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"segments.yaml:{line}:" in done.stderr, done.stderr
    assert "RecursionError" not in done.stderr and "Traceback" not in done.stderr
    assert f"nested more than {MAX_DEPTH} levels deep" in done.stderr or \
        "YAML syntax error" in done.stderr  # libyaml and PyYAML stop a very deep one first


def test_the_limits_are_the_documented_ones() -> None:
    from newsletter.core import yamlsrc

    assert (yamlsrc.MAX_ALIAS_NODES, yamlsrc.MAX_DEPTH) == (MAX_ALIAS_NODES, MAX_DEPTH)


def test_nesting_up_to_the_limit_and_aliases_within_the_budget_are_fine() -> None:
    expected: list = []
    for _ in range(MAX_DEPTH - 2):
        expected = [expected]
    assert parse_yaml(deep(MAX_DEPTH - 1), Path("x.yaml")).data == {"x": expected}
    assert load_plain(deep(MAX_DEPTH - 1)) == {"x": expected}
    text = bomb(levels=4)  # 9**3 = 729 leaves: well inside the budget
    assert parse_yaml(text, Path("x.yaml")).data == yaml.safe_load(text)
    assert load_plain(text) == yaml.safe_load(text)


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a [1, [2, *a]]\n"])
def test_a_recursive_alias_is_refused(text: str) -> None:
    with pytest.raises(SourceError, match="recursive alias"):
        parse_yaml(text, Path("x.yaml"))
    with pytest.raises(yaml.YAMLError, match="recursive alias"):
        load_plain(text)


def test_load_plain_refuses_a_bomb_where_the_editions_are_read(publication: Path) -> None:
    from newsletter.compose.editions import edition_group
    from newsletter.compose.publication import Publication

    other = publication / "issues" / "2026-11-30"
    other.mkdir()
    (other / "issue.yaml").write_text(bomb(), encoding="utf-8")
    with pytest.raises(yaml.YAMLError, match="nodes"):
        load_plain(bomb())
    group = edition_group(Publication.load(publication), "2026-11-24")  # skipped, not fatal
    assert "2026-11-30" not in [e.slug for e in group]


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.text(alphabet="abc xyz:#-'\"é", max_size=8),
                    st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text("abcd", min_size=1, max_size=3),
                                                 inner, max_size=4)), max_leaves=20)


@settings(max_examples=examples(50), deadline=None)
@given(data=values, share=st.booleans(), flow=st.booleans())
def test_ordinary_yaml_reads_as_pyyaml_reads_it(data, share: bool, flow: bool) -> None:
    """Against PyYAML's own loader as the reference; shared objects make anchors and
    aliases."""
    document = {"a": data, "b": data if share else None, "c": [data] if share else []}
    text = yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True)
    reference = yaml.load(text, Loader=yaml.SafeLoader)
    assert load_plain(text) == reference
    assert parse_yaml(text, Path("x.yaml")).data == reference
