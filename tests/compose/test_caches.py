"""What a build keeps under .newsletter/cache/ between processes: validated settings, manifests
and front matter (compose.validated), and Babel's dates (compose.i18n). Read back when the
input and the code are the same; never stale after an edit or an upgrade; damage ignored."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.compose import build_issue, i18n, markdown, validated
from newsletter.compose import publication as publication_module
from newsletter.compose.memo import Memo
from newsletter.compose.pipeline import TEXTS_CACHE
from newsletter.compose.publication import Publication, load_config
from newsletter.compose.schema import PieceMeta
from newsletter.core.errors import InputError
from tests.compose.helpers import SAMPLE, replace_in
from tests.conftest import ROOT


def entries(root: Path) -> list[Path]:
    return sorted((root / validated.VALID_CACHE).glob("*.pickle"))


def test_settings_are_read_back_not_validated_again(publication: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config, warnings = load_config(publication)
    assert config is not None and entries(publication)
    monkeypatch.setattr(publication_module, "validate", lambda *a: pytest.fail("validated again"))
    again, warnings_again = load_config(publication)
    assert again == config and again is not config and warnings_again == warnings


def test_an_edit_is_validated_again(publication: Path) -> None:
    """newsletter.yaml, an issue's manifest and a piece's front matter, each edited."""
    build_issue(Publication.load(publication), SAMPLE)
    replace_in(publication / "newsletter.yaml", "name: ", "name: Renamed ")
    assert Publication.load(publication).config.name.startswith("Renamed ")
    issue = publication / "issues" / SAMPLE
    replace_in(issue / "issue.yaml", "subject: ", "subject: Edited ")
    piece = sorted((issue / "pieces").glob("*.md"))[0]
    replace_in(piece, "title: ", "title: Retitled ")
    build = build_issue(Publication.load(publication), SAMPLE)
    assert build.subject.startswith("Edited ")
    assert any(p.meta.title.startswith("Retitled ") for p in build.issue.pieces)
    replace_in(piece, "expert: ", "expert: nobody-")  # an error is reported, not remembered
    for _ in range(2):
        with pytest.raises(InputError, match="unknown expert"):
            build_issue(Publication.load(publication), SAMPLE)


def test_errors_are_never_kept(publication: Path) -> None:
    replace_in(publication / "newsletter.yaml", "archive_url: https://", "archive_url: ftp://")
    for _ in range(2):
        config, problems = load_config(publication)
        assert config is None and any("http(s) URL" in p.message for p in problems)
    assert entries(publication) == []


def test_an_upgrade_validates_again(publication: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry from other code (here: one planted under this code's key, as an older version
    would have left it under its own) is used only by the same code."""
    config, _ = load_config(publication)
    [entry] = entries(publication)
    planted = config.model_copy(update={"name": "From the old version"})
    entry.write_bytes(pickle.dumps((planted, [])))
    assert load_config(publication)[0].name == "From the old version"  # the entry is read
    monkeypatch.setattr(validated, "_VALIDATING", (*validated._VALIDATING, Path(__file__)))
    validated.stamp.cache_clear()  # as a process of an upgraded version computes it
    try:
        assert load_config(publication)[0].name == config.name
    finally:
        monkeypatch.undo()
        validated.stamp.cache_clear()


@pytest.mark.parametrize("damage", [b"", b"not a pickle", pickle.dumps(("a", "b")),
                                    pickle.dumps((PieceMeta(title="t", expert="x"), []))])
def test_a_damaged_entry_is_ignored(publication: Path, damage: bytes) -> None:
    config, _ = load_config(publication)
    [entry] = entries(publication)
    entry.write_bytes(damage)
    assert load_config(publication)[0] == config
    assert pickle.loads(entry.read_bytes())[0] == config  # and replaced


def test_dates_are_formatted_once_and_kept(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Babel formats a date the first time; a new process reads it from the file; an upgrade of
    Babel (another stamp) or a damaged file formats it again; outside a build nothing is kept
    on disk."""
    day = dt.date(2026, 11, 24)
    i18n.DAYS.forget()
    with i18n.DAYS.kept_in(tmp_path):
        assert i18n.format_day(day, "en", "d MMMM y") == "24 November 2026"
    [kept] = tmp_path.glob("days-*.json")
    kept.write_text(kept.read_text().replace("24 November", "24 Planted"))
    i18n.DAYS.forget()  # as a new process
    monkeypatch.setattr(i18n, "_format_day", lambda *a: pytest.fail("formatted again"))
    with i18n.DAYS.kept_in(tmp_path):
        assert i18n.format_day(day, "en", "d MMMM y") == "24 Planted 2026"
    monkeypatch.undo()
    i18n.DAYS.forget()
    monkeypatch.setattr(i18n.DAYS, "stamp", lambda: "another Babel")
    with i18n.DAYS.kept_in(tmp_path):
        assert i18n.format_day(day, "en", "d MMMM y") == "24 November 2026"
    assert len(list(tmp_path.glob("days-*.json"))) == 2
    monkeypatch.undo()
    kept.write_text('{"broken": ')
    i18n.DAYS.forget()
    with i18n.DAYS.kept_in(tmp_path):
        assert i18n.format_day(day, "en", "d MMMM y") == "24 November 2026"
        assert i18n.format_day(day, "ar", "d MMMM y", "native") == "٢٤ نوفمبر ٢٠٢٦"
    assert json.loads(kept.read_text())  # the damaged file written whole again
    assert len(list(tmp_path.glob("days-*.json"))) == 3
    i18n.DAYS.forget()
    assert i18n.format_day(dt.date(2026, 1, 2), "en", "d MMMM y") == "2 January 2026"
    assert len(list(tmp_path.glob("days-*.json"))) == 3  # outside a build: memory only


def test_a_piece_is_rendered_once_and_kept(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A piece's HTML, text, images and paragraphs read back in a new process equal what
    markdown-it gives; an edited piece or another markdown-it is rendered again."""
    body = ('Some *text* with [a link](https://example.org/a).\n\n'
            '![A chart](chart.png "Caption. Source: X")\n\n- one\n- two\n')
    figure = markdown.Figure(url="https://news.example.org/c.png", width=300, height=200)

    def derived() -> tuple:
        return (markdown.to_html(body, lambda src: figure), markdown.to_text(body, 40),
                markdown.images(body), markdown.paragraphs(body))

    markdown.KEPT.forget()
    with markdown.KEPT.kept_in(tmp_path):
        first = derived()
    assert markdown.images(body) == [markdown.ImageRef("chart.png", "A chart",
                                                       "Caption. Source: X", 2)]
    markdown.KEPT.forget()  # as a new process
    for name in ("_to_html", "_to_text", "_images", "_paragraphs"):
        monkeypatch.setattr(markdown, name, lambda *a: pytest.fail("rendered again"))
    with markdown.KEPT.kept_in(tmp_path):
        assert derived() == first
        with pytest.raises(pytest.fail.Exception):
            markdown.to_text(body + "More.", 40)  # an edit: rendered again
    monkeypatch.undo()
    markdown.KEPT.forget()
    monkeypatch.setattr(markdown.KEPT, "stamp", lambda: "another markdown-it")
    for name in ("_to_html", "_to_text", "_images", "_paragraphs"):
        monkeypatch.setattr(markdown, name, lambda *a: pytest.fail("rendered again"))
    with markdown.KEPT.kept_in(tmp_path), pytest.raises(pytest.fail.Exception):
        derived()
    monkeypatch.undo()
    markdown.KEPT.forget()


def test_a_kept_result_of_the_wrong_shape_is_derived_again(tmp_path: Path) -> None:
    body = '![A chart](chart.png "Caption")\n\nText.\n'
    markdown.KEPT.forget()
    with markdown.KEPT.kept_in(tmp_path):
        first = markdown.images(body), markdown.paragraphs(body), markdown.to_text(body)
    [kept] = tmp_path.glob("markdown-*.json")
    stored = json.loads(kept.read_text())
    kept.write_text(json.dumps({key: [[1, 2]] if key == "images" else 5 for key in stored}))
    markdown.KEPT.forget()
    with markdown.KEPT.kept_in(tmp_path):
        assert (markdown.images(body), markdown.paragraphs(body), markdown.to_text(body)) == first
    assert json.loads(kept.read_text()) == stored  # and written right again
    markdown.KEPT.forget()


def test_a_folder_keeps_the_latest_entries(tmp_path: Path) -> None:
    """One file per version of a text: the oldest go once there are more than the memo keeps."""
    kept = Memo("t", (), (), kept=3)
    for n in range(5):
        with kept.kept_in(tmp_path):
            assert kept.get(f"version {n}", "n", lambda n=n: n, lambda v: type(v) is int) == n
    assert len(list(tmp_path.glob("t-*.json"))) == 3
    kept.forget()
    with kept.kept_in(tmp_path):  # the newest is still read back
        assert kept.get("version 4", "n", lambda: pytest.fail("derived again"), lambda v: True) == 4


def test_a_warm_cold_build_loads_no_validator_parser_or_locale_data(publication: Path) -> None:
    """A second `newsletter build` process of the same sources reads every result back: no
    pydantic schema is built, and email-validator, Babel, markdown-it, cssutils and Pillow
    stay unloaded; its files are the first one's, byte for byte."""
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['newsletter', '-C', {str(publication)!r}, 'build', {SAMPLE!r}]\n"
        "try:\n"
        "    runpy.run_module('newsletter', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "from newsletter.compose.schema import IssueManifest, PublicationConfig\n"
        "built = [m.__name__ for m in (IssueManifest, PublicationConfig)\n"
        "         if m.__pydantic_complete__]\n"
        "heavy = {'email_validator', 'babel', 'cssutils', 'PIL', 'importlib.metadata',\n"
        "         'markdown_it'}\n"
        "print(sorted(heavy & set(sys.modules)) + built)\n"
    )

    def run() -> tuple[str, dict[str, bytes]]:
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True,
                              capture_output=True, text=True, timeout=120)
        dist = publication / "dist" / SAMPLE
        return done.stdout.splitlines()[-1], {p.name: p.read_bytes() for p in dist.iterdir()}

    first, files = run()
    assert "'babel'" in first and "'email_validator'" in first and "PublicationConfig" in first
    assert run() == ("[]", files)
    assert list((publication / TEXTS_CACHE).glob("markdown-*.json"))
