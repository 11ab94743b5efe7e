"""The gate knows a draft: the scaffold's placeholder texts are errors, a From address at a
reserved domain is an error for a transport that delivers, a long preheader is a warning, and
the leftover-placeholder check stays linear on hostile input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.checks import ERROR, WARNING, check_issue
from newsletter.checks.leftovers import LEFTOVERS, LEFTOVERS_SHOWN, source_leftovers
from newsletter.checks.sender import delivers, reserved_domain
from newsletter.compose import scaffold
from newsletter.compose.publication import Publication
from newsletter.core.settings import Settings
from tests.checks.conftest import ISSUE, check, edit, of, write_piece
from tests.compose.helpers import run

SLUG = "2026-12-01"


def _fresh(tmp_path: Path) -> Path:
    root = tmp_path / "pub"
    assert run(root, "init").exit_code == 0
    assert run(root, "new", SLUG).exit_code == 0
    return root


def test_an_untouched_new_issue_fails_naming_every_placeholder(tmp_path: Path) -> None:
    root = _fresh(tmp_path)
    report = check_issue(Publication.load(root), SLUG, spam=False)
    found = {f.check: f for f in report.errors if f.check.startswith("draft.")}
    assert set(found) == {"draft.preheader", "draft.title", "draft.body", "draft.expert",
                          "draft.address"}
    issue, piece = root / "issues" / SLUG / "issue.yaml", root / "issues" / SLUG / "pieces"
    lines = {p: p.read_text().splitlines() for p in (issue, piece / "first.md",
                                                    root / "newsletter.yaml")}

    def at(finding, needle: str) -> None:
        text = lines[Path(finding.file)][finding.line - 1]
        assert needle in text, (finding, text)

    at(found["draft.preheader"], scaffold.DRAFT_PREHEADER)
    at(found["draft.title"], scaffold.DRAFT_TITLE)
    at(found["draft.body"], "Write the piece here")
    at(found["draft.expert"], "expert: jane-doe")
    at(found["draft.address"], scaffold.DRAFT_ADDRESS)
    result = run(root, "check", SLUG, "--strict", "--no-spam")
    assert result.exit_code == 1
    assert "[draft.title]" in result.output and "[draft.address]" in result.output


def test_a_fresh_init_filled_in_passes_check_strict(tmp_path: Path) -> None:
    """Everything else `init` and `new` write passes the gate: only the placeholders fail."""
    root = _fresh(tmp_path)
    edit(root / "newsletter.yaml", scaffold.DRAFT_ADDRESS, "12 Harbour Road, Leith EH6 6LD, UK")
    edit(root / "newsletter.yaml", "jane-doe: {name: Jane Doe",
         "ines-moreau: {name: Inès Moreau")
    issue = root / "issues" / SLUG
    edit(issue / "issue.yaml", scaffold.DRAFT_PREHEADER,
         "Why the harbour towns are rebuilding their sea walls this winter")
    (issue / "pieces" / "first.md").write_text(
        "---\ntitle: The sea walls of the north\nexpert: ines-moreau\n---\n\n"
        "Every harbour town on the coast has a plan for its sea wall. Few have the money, and "
        "fewer still have agreed who pays when the next storm comes. The "
        "[regional survey](https://example.org/survey) counts forty towns at risk.\n",
        encoding="utf-8")
    result = run(root, "check", SLUG, "--strict", "--no-spam")
    assert result.exit_code == 0, result.output
    assert "0 errors, 0 warnings" in result.output


def test_sample_has_no_draft_findings(sample_report) -> None:
    assert [f for f in sample_report.findings if f.check.startswith("draft.")] == []


def test_the_placeholder_expert_only_while_it_is_the_scaffolds(tmp_path: Path) -> None:
    root = _fresh(tmp_path)
    edit(root / "newsletter.yaml", "{name: Jane Doe,", "{name: Jane Dorsey,")
    report = check_issue(Publication.load(root), SLUG, spam=False)
    assert of(report, "draft.expert") == []


@pytest.mark.parametrize(("address", "reserved"), [
    ("news@example.org", "example.org"), ("a@mail.example.com", "example.com"),
    ("a@EXAMPLE.NET", "example.net"), ("a@host.test", ".test"), ("a@x.invalid", ".invalid"),
    ("a@example", ".example"), ("a@localhost", ".localhost"), ("a@example.co.uk", None),
    ("a@notexample.org", None), ("a@example.org.uk", None), ("a@institute.org", None),
])
def test_reserved_domains(address: str, reserved: str | None) -> None:
    assert reserved_domain(address) == reserved


def _settings(root: Path, **env: str) -> Settings:
    return Settings.from_env(root, env)


def test_which_transports_deliver(tmp_path: Path) -> None:
    assert not delivers("outbox", _settings(tmp_path))
    assert delivers("sendgrid", _settings(tmp_path))  # api.sendgrid.com
    assert not delivers("sendgrid", _settings(tmp_path, SENDGRID_API_URL="http://127.0.0.1:9"))
    assert delivers("smtp", _settings(tmp_path, SMTP_URL="smtp://u:p@mail.example.net:587"))
    assert not delivers("smtp", _settings(tmp_path, SMTP_URL="smtp://localhost:2525"))
    assert not delivers("smtp", _settings(tmp_path, SMTP_URL="smtp://[::1]:2525"))
    assert delivers("ses", _settings(tmp_path))


def test_reserved_from_is_an_error_for_a_delivering_transport(
        publication: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert of(check(publication), "compliance.from-domain") == []  # the outbox: fine
    monkeypatch.setenv("SMTP_URL", "smtp://user:secret@mail.institute.example.net:587")
    monkeypatch.setenv("NEWSLETTER_TRANSPORT", "smtp")
    [finding] = of(check(publication), "compliance.from-domain")
    assert finding.severity == ERROR and "newsletter@example.org" in finding.message
    assert "example.org" in finding.message and "RFC 2606" in finding.message
    config = (publication / "newsletter.yaml").read_text().splitlines()
    assert config[finding.line - 1].startswith("from:")
    monkeypatch.setenv("SMTP_URL", "smtp://127.0.0.1:2525")  # a test server on this machine
    assert of(check(publication), "compliance.from-domain") == []
    monkeypatch.delenv("NEWSLETTER_TRANSPORT")
    # `check --transport` judges for a transport other than the configured one
    result = run(publication, "check", "2026-11-24", "--no-spam", "--transport", "sendgrid")
    assert result.exit_code == 1 and "[compliance.from-domain]" in result.output
    edit(publication / "newsletter.yaml", "email: newsletter@example.org",
         "email: newsletter@institute.org")
    result = run(publication, "check", "2026-11-24", "--no-spam", "--transport", "sendgrid")
    assert "[compliance.from-domain]" not in result.output


def test_preheader_over_100_characters_warns(publication: Path) -> None:
    manifest = publication / ISSUE / "issue.yaml"
    assert of(check(publication), "content.preheader-length") == []
    long = "Four of our scholars on what policymakers get wrong this week, " \
           "and what they should do instead, in detail."
    assert len(long) > 100
    edit(manifest, 'preheader: "Four of our scholars on what policymakers are getting wrong '
                   'this week, and what to do instead."', f'preheader: "{long}"')
    [finding] = of(check(publication), "content.preheader-length")
    assert finding.severity == WARNING and f"{len(long)} characters" in finding.message
    assert finding.line == 2 and "intro:" in finding.fix
    edit(manifest, long, long[:100])
    assert of(check(publication), "content.preheader-length") == []


# -- leftovers: linear, and the same answers as the plain reading ----------------------------

WORD = {"TK": r"\bTK\b", "TODO": r"\bTODO\b", "FIXME": r"\bFIXME\b"}


@settings(max_examples=80)
@given(st.lists(st.sampled_from(["TK", "TODO", "FIXME", "x", "_", " ", ".", "é", "1"]),
                max_size=30).map("".join))
def test_fast_word_patterns_match_exactly_what_word_boundaries_do(text: str) -> None:
    for kind in LEFTOVERS:
        if kind.label in WORD:
            plain = [m.start() for m in re.finditer(WORD[kind.label], text)]
            assert [m.start() for m in kind.pattern.finditer(text)] == plain
            assert kind.count(text, text.lower()) == len(plain)


def _reference(path: Path, lines: list[str]) -> list[tuple[int, str, bool]]:
    """(line, label, in a comment) of every leftover, read the plain (quadratic) way."""
    found = []
    for number, text in enumerate(lines, start=1):
        for label, regex in [*WORD.items(), ("lorem ipsum", "(?i)lorem ipsum"),
                             ("unrendered {{ }}", r"\{\{"), ("unrendered {% %}", r"\{%")]:
            for match in re.finditer(regex, text):
                if path.suffix == ".yaml":
                    hidden = text.lstrip().startswith("#")
                else:
                    before = "\n".join(lines[: number - 1] + [text[: match.start()]])
                    hidden = before.rfind("<!--") > before.rfind("-->")
                found.append((number, label, hidden))
    return found


@settings(max_examples=60)
@given(st.lists(st.lists(st.sampled_from(
    ["TODO", "lorem ipsum", "<!--", "-->", "{{", "x", " ", "#"]), max_size=8).map("".join),
    max_size=6), st.sampled_from(["piece.md", "issue.yaml"]))
def test_leftovers_agree_with_the_plain_reading(lines: list[str], name: str) -> None:
    path = Path(name)
    want = _reference(path, lines)
    got = source_leftovers(path, lines, set())
    for label in {label for _, label, _ in want}:
        for hidden in (False, True):
            hits = [n for n, lab, h in want if lab == label and h == hidden]
            severity = WARNING if hidden else ERROR
            mine = [f for f in got if f.severity == severity]
            one_by_one = [f.line for f in mine
                          if f.message.startswith(f"leftover placeholder {label}:")]
            assert one_by_one == hits[:LEFTOVERS_SHOWN]
            counted = [f for f in mine if re.search(rf"more leftover placeholders? "
                                                    rf"{re.escape(label)} in this", f.message)]
            if len(hits) > LEFTOVERS_SHOWN:
                [rest] = counted
                assert f"({len(hits):,} in all)" in rest.message
                assert rest.line == hits[LEFTOVERS_SHOWN]
            else:
                assert counted == []


def test_many_leftovers_are_counted_not_listed(publication: Path) -> None:
    body = "\n\n".join(["Lorem ipsum dolor. TODO: finish. <!-- TODO later -->"] * 500)
    piece = write_piece(publication, "cyber.md", body)
    findings = [f for f in of(check(publication), "content.leftover") if f.file == str(piece)]
    errors = [f for f in findings if f.severity == ERROR]
    assert len([f for f in errors if f.message.startswith("leftover placeholder TODO:")]) \
        == LEFTOVERS_SHOWN
    [todo_rest] = [f for f in errors if "more leftover placeholders TODO" in f.message]
    assert "490 more" in todo_rest.message and "(500 in all)" in todo_rest.message
    [hidden_rest] = [f for f in findings if f.severity == WARNING and "TODO" in f.message
                     and "more" in f.message]
    assert "(in a comment)" in hidden_rest.message
    assert len(findings) == 3 * (LEFTOVERS_SHOWN + 1)  # lorem ipsum, TODO, TODO in comments
