"""Regenerate newsletter/data/caniemail.json from caniemail.com's API data.

    python scripts/update_caniemail.py              # downloads URL (make update-caniemail)
    python scripts/update_caniemail.py --from FILE  # uses a saved copy of data.json

The vendored file keeps, for every HTML, CSS and image-format feature, the support value of the
newest tested version of each client `newsletter check` reports on (Gmail, Outlook for Windows,
Apple Mail, Yahoo! Mail), plus the notes those values refer to. The data is caniemail.com's,
MIT-licensed (newsletter/data/caniemail-LICENSE).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
from pathlib import Path

URL = "https://www.caniemail.com/api/data.json"
TARGET = Path(__file__).resolve().parent.parent / "newsletter" / "data" / "caniemail.json"
CLIENTS = {
    "gmail": ["desktop-webmail", "ios", "android", "mobile-webmail"],
    "outlook": ["windows"],
    "apple-mail": ["macos", "ios"],
    "yahoo": ["desktop-webmail", "ios", "android"],
}
CATEGORIES = {"html", "css", "image"}


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for caniemail version labels ('2019', '16.80', '2024-05', '12.4')."""
    return tuple(int(n) for n in re.findall(r"\d+", version)) or (0,)


def latest(versions: dict[str, str]) -> tuple[str, str]:
    """(version, support value) of the newest tested version."""
    version = max(versions, key=version_key)
    return version, versions[version]


def compact(data: dict) -> dict:
    """The subset of caniemail's data.json that the email-client check uses."""
    families, platforms = data["nicenames"]["family"], data["nicenames"]["platform"]
    clients = {
        f"{family}.{platform}": f"{families[family]} ({platforms[platform]})"
        for family, names in CLIENTS.items()
        for platform in names
    }
    features = {}
    for feature in data["data"]:
        if feature["category"] not in CATEGORIES:
            continue
        support: dict[str, str] = {}
        tested: dict[str, str] = {}
        for client in clients:
            family, platform = client.split(".", 1)
            versions = feature["stats"].get(family, {}).get(platform)
            if versions:
                tested[client], support[client] = latest(versions)
        used = {n for value in support.values() for n in re.findall(r"#(\d+)", value)}
        features[feature["slug"]] = {
            "title": feature["title"].strip(),
            "keywords": feature.get("keywords") or "",
            "url": feature["url"],
            "support": support,
            "tested": tested,
            "notes": {
                n: text for n, text in (feature.get("notes_by_num") or {}).items() if n in used
            },
        }
    return {
        "source": URL,
        "licence": "MIT, Copyright (c) 2019 HTeuMeuLeu; see caniemail-LICENSE",
        "last_update_date": data.get("last_update_date"),
        "generated_by": "scripts/update_caniemail.py",
        "clients": clients,
        "features": features,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", help="a saved data.json instead of downloading")
    parser.add_argument("--out", default=str(TARGET), help="where to write (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.source:
        raw = Path(args.source).read_bytes()
    else:
        with urllib.request.urlopen(URL, timeout=60) as response:  # noqa: S310 - fixed https URL
            raw = response.read()
    out = compact(json.loads(raw))
    Path(args.out).write_text(
        json.dumps(out, ensure_ascii=False, sort_keys=True, indent=1) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {args.out}: {len(out['features'])} features, data of {out['last_update_date']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
