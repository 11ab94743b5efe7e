"""Email-client support from caniemail.com's data: unsupported features name the clients."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from newsletter.checks import WARNING
from newsletter.checks.caniemail import DATA, load_support
from tests.checks.conftest import check, edit, of, own_template, write_piece
from tests.conftest import ROOT

HEADLINE = "h2.headline { font-family: {{ fonts.sans }};"


def test_vendored_data_has_its_licence_and_the_four_clients() -> None:
    data = json.loads(DATA.read_text())
    licence = (DATA.parent / "caniemail-LICENSE").read_text()
    assert "MIT License" in licence and "HTeuMeuLeu" in licence
    families = {client.split(".")[0] for client in data["clients"]}
    assert families == {"gmail", "outlook", "apple-mail", "yahoo"}
    assert len(data["features"]) > 250


def test_css_properties_map_to_caniemail_features() -> None:
    support = load_support()
    assert support.property_slug("padding-left") == "css-padding"
    assert support.property_slug("border-top-width") == "css-border"
    assert support.property_slug("box-shadow") == "css-box-shadow"
    assert support.values[("display", "flex")] == "css-display-flex"
    assert "Outlook (Windows)" in support.unsupported("css-box-shadow")


def test_unsupported_css_in_the_template_names_the_clients(publication: Path) -> None:
    template = own_template(publication)
    edit(template / "email.mjml.j2", HEADLINE, HEADLINE + " box-shadow: 0 1px 2px #888888;")
    report = check(publication)
    [finding] = [f for f in of(report, "clients.unsupported") if "box-shadow" in f.message]
    assert finding.severity == WARNING
    assert "Outlook (Windows)" in finding.message and "used 4 times" in finding.message
    assert "caniemail.com/features/css-box-shadow" in finding.fix
    assert "<h2" in finding.excerpt


def test_unsupported_element_is_reported(publication: Path) -> None:
    template = own_template(publication)
    edit(
        template / "email.mjml.j2",
        '<mj-column>\n        <mj-text padding="0 24px">',
        '<mj-column>\n        <mj-raw><video src="https://example.org/v.mp4"></video></mj-raw>'
        '\n        <mj-text padding="0 24px">',
    )
    [finding] = [f for f in of(check(publication), "clients.unsupported") if "video" in f.message]
    assert "Gmail" in finding.message and "Outlook (Windows)" in finding.message


def test_update_script_keeps_the_newest_version_and_its_notes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "update_caniemail", ROOT / "scripts" / "update_caniemail.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    upstream = {
        "last_update_date": "2026-01-01",
        "nicenames": {
            "family": {
                "gmail": "Gmail",
                "outlook": "Outlook",
                "apple-mail": "Apple Mail",
                "yahoo": "Yahoo! Mail",
            },
            "platform": {
                "desktop-webmail": "Desktop Webmail",
                "ios": "iOS",
                "android": "Android",
                "mobile-webmail": "Mobile Webmail",
                "windows": "Windows",
                "macos": "macOS",
            },
        },
        "data": [
            {
                "slug": "css-example",
                "title": "example",
                "category": "css",
                "url": "https://www.caniemail.com/features/css-example/",
                "keywords": None,
                "stats": {
                    "outlook": {"windows": {"2007": "y", "2019": "n #2", "2016": "a #1"}},
                    "gmail": {"ios": {"2019-02": "n", "2024-05": "y"}},
                },
                "notes_by_num": {"1": "old note", "2": "Not in Word."},
            },
            {"slug": "amp", "title": "AMP", "category": "others", "url": "", "stats": {}},
        ],
    }
    source = tmp_path / "data.json"
    source.write_text(json.dumps(upstream))
    out = tmp_path / "caniemail.json"
    assert module.main(["--from", str(source), "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    feature = written["features"]["css-example"]
    assert feature["support"] == {"outlook.windows": "n #2", "gmail.ios": "y"}
    assert feature["notes"] == {"2": "Not in Word."}
    assert list(written["features"]) == ["css-example"]


LAST_STYLE = "      span.credit { color: #52606d; }\n    </mj-style>"


def test_style_rules_that_only_enhance_stay_quiet_but_a_lost_rule_warns(
    publication: Path,
) -> None:
    """Media-query rules and client hooks are enhancements; a plain rule that applies to the
    email but is only in <style> (here kept out of the inliner) is a real loss."""
    assert of(check(publication), "clients.style-block") == []
    template = own_template(publication)
    edit(
        template / "email.mjml.j2",
        LAST_STYLE,
        LAST_STYLE + '\n    <mj-raw><style data-premailer="ignore">'
        "h2.headline { letter-spacing: 1px; }</style></mj-raw>",
    )
    [finding] = of(check(publication), "clients.style-block")
    assert "Gmail (Mobile Webmail)" in finding.message
    assert "h2.headline" in finding.excerpt


def test_hook_that_matches_an_element_is_not_an_enhancement(publication: Path) -> None:
    template = own_template(publication)
    edit(
        template / "email.mjml.j2",
        LAST_STYLE,
        LAST_STYLE + '\n    <mj-raw><style data-premailer="ignore">'
        "[data-ogsc] .headline { color: #ffffff; } .headline[class] { color: #102a43; }"
        "</style></mj-raw>",
    )
    [finding] = of(check(publication), "clients.style-block")
    assert ".headline[class]" in finding.excerpt


def test_word_break_warns_only_when_a_word_is_too_long_for_a_phone_line(
    publication: Path,
) -> None:
    assert [
        f for f in of(check(publication), "clients.unsupported") if "word-break" in f.message
    ] == []
    write_piece(publication, "cyber.md", "See " + "x" * 45 + " for the report.")
    [finding] = [
        f for f in of(check(publication), "clients.unsupported") if "word-break" in f.message
    ]
    assert "Yahoo! Mail" in finding.message and "used once" in finding.message
