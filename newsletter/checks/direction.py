"""Direction: text whose script disagrees with its declared language, missing chrome strings,
the publication's own words untranslated in another language's edition, and caniemail's support
of `direction` / `dir` where a right-to-left issue relies on them.
"""

from __future__ import annotations

from newsletter.checks.caniemail import load_support
from newsletter.checks.model import WARNING, Context, Finding
from newsletter.compose import i18n, markdown
from newsletter.compose.bidi import strong_counts
from newsletter.core.words import plural

#: share of strong letters in the "wrong" direction above which a text is reported
THRESHOLD = 0.6
MIN_LETTERS = 20  # too little text says nothing about its language
FEATURES = ("html-dir", "css-direction")


def mismatch(text: str, direction: str) -> str | None:
    """The direction `text` is mostly written in, when it disagrees with `direction`."""
    rtl, ltr = strong_counts(text)
    total = rtl + ltr
    if total < MIN_LETTERS:
        return None
    if direction == "ltr" and rtl / total > THRESHOLD:
        return "rtl"
    if direction == "rtl" and ltr / total > THRESHOLD:
        return "ltr"
    return None


def _words(direction: str) -> str:
    return "right-to-left" if direction == "rtl" else "left-to-right"


def check_direction(ctx: Context) -> list[Finding]:
    issue, config = ctx.build.issue, ctx.pub.config
    manifest_path = str(issue.folder / "issue.yaml")
    lang = issue.manifest.language or config.language
    issue_dir = i18n.direction(lang, issue.manifest.dir)
    findings: list[Finding] = []
    head = " ".join([issue.manifest.subject, issue.manifest.preheader])
    found = mismatch(head, issue_dir)
    if found:
        findings.append(Finding(
            WARNING, "direction.mismatch",
            f"the subject and preheader are mostly {_words(found)} script but the issue's "
            f"language '{lang}' is {_words(issue_dir)}",
            "set language: (and dir: if needed) in issue.yaml to the language it is written in",
            file=manifest_path, line=issue.source.line_of(("language",))
            if issue.manifest.language else issue.source.line_of(("subject",)),
        ))
    for piece in issue.pieces:
        piece_lang = piece.meta.lang or lang
        piece_dir = i18n.direction(piece_lang, piece.meta.dir)
        text = " ".join([piece.meta.title, *markdown.paragraphs(piece.body)])
        found = mismatch(text, piece_dir)
        if found:
            key = "lang" if piece.meta.lang else "title"
            findings.append(Finding(
                WARNING, "direction.mismatch",
                f"this piece is mostly {_words(found)} script but its language "
                f"'{piece_lang}' is {_words(piece_dir)}",
                "set lang: in the piece's front matter (e.g. lang: en or lang: ar)",
                file=str(piece.path), line=piece.front.line_of((key,)),
            ))
    languages = dict.fromkeys([lang, *(p.meta.lang for p in issue.pieces if p.meta.lang)])
    for code in languages:
        missing = i18n.missing_strings(code, config.strings)
        if missing:
            shown = ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else "")
            findings.append(Finding(
                WARNING, "direction.strings",
                f"no '{code}' words for {plural(len(missing), 'chrome string')} ({shown}); "
                "they appear in English",
                f"add them under strings: {{{code}: {{...}}}} in newsletter.yaml "
                f"(shipped languages: {', '.join(i18n.shipped_languages())})",
                file=manifest_path if code == lang and issue.manifest.language
                else str(ctx.pub.root / "newsletter.yaml"),
                line=issue.source.line_of(("language",)) if issue.manifest.language else None,
            ))
    findings += check_chrome(ctx, lang)
    if issue_dir == "rtl" or any(
        i18n.direction(p.meta.lang or lang, p.meta.dir) == "rtl" for p in issue.pieces
    ):
        ctx.extra["direction_notes"] = support_notes()
    return findings


def check_chrome(ctx: Context, lang: str) -> list[Finding]:
    """The publication's own words (name, publisher, footer, address, From name) that an
    edition in another language than the publication's shows untranslated."""
    config = ctx.pub.config
    missing = config.untranslated_chrome(lang)
    if not missing:
        return []
    settings = str(ctx.pub.root / "newsletter.yaml")
    lines = next((source.lines for source in ctx.sources if str(source.path) == settings), [])
    line = next((number for number, text in enumerate(lines, start=1)
                 if text.startswith("translations:")), None)  # the top-level key
    return [Finding(
        WARNING, "direction.chrome",
        f"this '{lang}' edition shows the publication's {', '.join(missing)} in "
        f"'{config.language}': newsletter.yaml has no '{lang}' translation of "
        + ("it" if len(missing) == 1 else "them"),
        f"add translations: {{{lang}: {{{', '.join(k + ': ...' for k in missing)}}}}} to "
        "newsletter.yaml (to keep one as written, repeat it there)",
        file=settings,
        line=line,
    )]


def support_notes() -> list[str]:
    """caniemail's word on `dir` and `direction` for the clients that need the inline fallback."""
    support = load_support()
    notes = []
    for slug in FEATURES:
        feature = support.features.get(slug)
        if not feature:
            continue
        weak = []
        for client, value in feature["support"].items():
            flag, *refs = value.split()
            if flag == "y" or client not in support.clients:
                continue
            why = "; ".join(feature["notes"].get(r.lstrip("#"), "") for r in refs).strip()
            state = "partial" if flag == "a" else "none"
            weak.append(f"{support.clients[client]} ({state}{': ' + why if why else ''})")
        if weak:
            notes.append(f"caniemail {feature['title']}: " + ", ".join(weak)
                         + "; the template also sets direction and text-align inline there")
    return notes
