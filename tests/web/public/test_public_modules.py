"""The public side's modules: no import circle among newsletter.web's modules (public.py and
preferences.py used to import each other), and none over about 400 lines."""

from __future__ import annotations

from tests.test_layers import ROOT, all_modules, imports_of


def test_no_import_circle_inside_the_web_package() -> None:
    modules = {name: path for name, path in all_modules().items()
               if name.startswith("newsletter.web")}
    known = set(all_modules())
    graph = {name: {m for m in imports_of(name, path.read_text(encoding="utf-8"), known,
                                          path.name == "__init__.py")
                    if m in modules and m != name}
             for name, path in modules.items()}
    circles = []

    def visit(name: str, trail: list[str]) -> None:
        for nxt in sorted(graph[name]):
            if nxt in trail:
                circles.append(" -> ".join([*trail[trail.index(nxt):], nxt]))
            elif len(trail) < len(graph):
                visit(nxt, [*trail, nxt])

    for name in sorted(graph):
        visit(name, [name])
    assert circles == []


def test_public_side_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines())
             for p in (ROOT / "web").glob("*.py")
             if p.name in ("public.py", "side.py", "consent.py", "engagement.py", "csrf.py",
                           "preferences.py", "site.py")}
    assert len(sizes) == 7 and max(sizes.values()) <= 400, sizes
