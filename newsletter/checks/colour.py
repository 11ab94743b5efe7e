"""CSS colours and WCAG 2 contrast ratios."""

from __future__ import annotations

import re

RGB = tuple[float, float, float]
NAMED = {
    "black": "#000000",
    "white": "#ffffff",
    "red": "#ff0000",
    "green": "#008000",
    "blue": "#0000ff",
    "gray": "#808080",
    "grey": "#808080",
    "silver": "#c0c0c0",
    "maroon": "#800000",
    "purple": "#800080",
    "fuchsia": "#ff00ff",
    "magenta": "#ff00ff",
    "lime": "#00ff00",
    "olive": "#808000",
    "yellow": "#ffff00",
    "navy": "#000080",
    "teal": "#008080",
    "aqua": "#00ffff",
    "cyan": "#00ffff",
    "orange": "#ffa500",
    "lightgray": "#d3d3d3",
    "lightgrey": "#d3d3d3",
    "darkgray": "#a9a9a9",
    "darkgrey": "#a9a9a9",
    "whitesmoke": "#f5f5f5",
    "gainsboro": "#dcdcdc",
}
HEX = re.compile(r"#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})\b")
FUNC = re.compile(r"rgba?\(([^)]*)\)")


def parse(value: str) -> tuple[RGB, float] | None:
    """((r, g, b) in 0..255, alpha) for a CSS colour, or None if it is not one we know."""
    value = value.strip().lower().replace("!important", "").strip()
    if value in NAMED:
        value = NAMED[value]
    if value == "transparent":
        return (0.0, 0.0, 0.0), 0.0
    match = HEX.fullmatch(value)
    if match:
        digits = match.group(1)
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits)
        channels = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
        alpha = channels[3] / 255 if len(channels) == 4 else 1.0
        return (float(channels[0]), float(channels[1]), float(channels[2])), alpha
    match = FUNC.fullmatch(value)
    if match:
        parts = [p for p in re.split(r"[\s,/]+", match.group(1).strip()) if p]
        if len(parts) < 3:
            return None
        try:
            rgb = [float(p[:-1]) * 2.55 if p.endswith("%") else float(p) for p in parts[:3]]
            alpha = 1.0
            if len(parts) > 3:
                a = parts[3]
                alpha = float(a[:-1]) / 100 if a.endswith("%") else float(a)
        except ValueError:
            return None
        return (rgb[0], rgb[1], rgb[2]), max(0.0, min(1.0, alpha))
    return None


def colour_in(value: str) -> tuple[RGB, float] | None:
    """The colour inside a `background` shorthand such as `url(x.png) #fff no-repeat`."""
    value = re.sub(r"url\([^)]*\)", " ", value.lower())
    for token in re.findall(r"rgba?\([^)]*\)|#[0-9a-f]+|[a-z]+", value):
        found = parse(token)
        if found:
            return found
    return None


def blend(top: tuple[RGB, float], under: RGB) -> RGB:
    """`top` (with its alpha) painted over the opaque colour `under`."""
    rgb, alpha = top
    return (
        rgb[0] * alpha + under[0] * (1 - alpha),
        rgb[1] * alpha + under[1] * (1 - alpha),
        rgb[2] * alpha + under[2] * (1 - alpha),
    )


def luminance(rgb: RGB) -> float:
    """WCAG 2 relative luminance."""

    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    """WCAG 2 contrast ratio between two opaque colours (1 to 21)."""
    la, lb = luminance(a), luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def hex_of(rgb: RGB) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)
