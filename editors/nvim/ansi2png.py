"""Render a terminal capture (`tmux capture-pane -e -p`) as a PNG.

    python3 ansi2png.py CAPTURE.txt OUT.png [--font-size 16]

Understands what tmux writes: SGR colours (16, 256 and 24-bit, foreground,
background, underline), bold, italic, underline (curly too), reverse, and
double-width characters.  Needs Pillow (Debian: python3-pil) and the DejaVu
Sans Mono fonts (Debian: fonts-dejavu-core, fonts-dejavu-extra).
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = {
    (False, False): "DejaVuSansMono.ttf",
    (True, False): "DejaVuSansMono-Bold.ttf",
    (False, True): "DejaVuSansMono-Oblique.ttf",
    (True, True): "DejaVuSansMono-BoldOblique.ttf",
}
# Neovim 0.11's default dark scheme: Normal is NvimLightGrey2 on NvimDarkGrey2.
DEFAULT_FG = (0xE0, 0xE2, 0xEA)
DEFAULT_BG = (0x14, 0x16, 0x1B)
BASIC = [  # the 16 ANSI colours, Neovim's palette where it has one
    (0x07, 0x08, 0x0D), (0xFF, 0xC0, 0xB9), (0xB3, 0xF6, 0xC0), (0xFC, 0xE0, 0x94),
    (0xA6, 0xDB, 0xFF), (0xFF, 0xCA, 0xFF), (0x8C, 0xF8, 0xF7), (0xEE, 0xF1, 0xF8),
    (0x4F, 0x52, 0x58), (0xFF, 0xC0, 0xB9), (0xB3, 0xF6, 0xC0), (0xFC, 0xE0, 0x94),
    (0xA6, 0xDB, 0xFF), (0xFF, 0xCA, 0xFF), (0x8C, 0xF8, 0xF7), (0xEE, 0xF1, 0xF8),
]  # fmt: skip
SGR = re.compile(r"\x1b\[([0-9;:]*)m")
OTHER_ESCAPE = re.compile(r"\x1b(\[[0-9;:?]*[A-Za-ln-z]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-B])")

Colour = tuple[int, int, int]

# Box-drawing characters drawn as lines so that borders join across cells:
# which of (left, right, up, down) each one reaches.
BOX = {
    "─": "lr", "│": "ud", "┌": "rd", "┐": "ld", "└": "ru", "┘": "lu",
    "╭": "rd", "╮": "ld", "╰": "ru", "╯": "lu", "├": "udr", "┤": "udl",
    "┬": "lrd", "┴": "lru", "┼": "lrud",
}  # fmt: skip


def xterm256(index: int) -> Colour:
    if index < 16:
        return BASIC[index]
    if index < 232:
        index -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[index // 36], steps[(index // 6) % 6], steps[index % 6])
    level = 8 + (index - 232) * 10
    return (level, level, level)


@dataclass(frozen=True)
class Style:
    fg: Colour | None = None
    bg: Colour | None = None
    underline_colour: Colour | None = None
    bold: bool = False
    italic: bool = False
    underline: int = 0  # 0 none, 1 straight, 3 curly, ...
    reverse: bool = False


def colour_from(params: list[list[int]], i: int) -> tuple[Colour | None, int]:
    """The colour of an extended 38/48/58 parameter at ``params[i]``; next index."""
    head = params[i]
    if len(head) > 1:  # colon form: 38:2::r:g:b or 38:2:r:g:b or 38:5:n
        rest = head[1:]
        if rest[0] == 5 and len(rest) >= 2:
            return xterm256(rest[1]), i + 1
        if rest[0] == 2:
            rgb = rest[-3:]
            return (rgb[0], rgb[1], rgb[2]), i + 1
        return None, i + 1
    if i + 1 < len(params) and params[i + 1][0] == 5 and i + 2 < len(params):
        return xterm256(params[i + 2][0]), i + 3
    if i + 1 < len(params) and params[i + 1][0] == 2 and i + 4 < len(params):
        return (params[i + 2][0], params[i + 3][0], params[i + 4][0]), i + 5
    return None, i + 1


def apply_sgr(style: Style, text: str) -> Style:
    params = [[int(x) if x else 0 for x in part.split(":")] for part in (text or "0").split(";")]
    i = 0
    while i < len(params):
        code = params[i][0]
        if code == 0:
            style, i = Style(), i + 1
            continue
        if code in (38, 48, 58):
            colour, i = colour_from(params, i)
            field = {38: "fg", 48: "bg", 58: "underline_colour"}[code]
            style = replace(style, **{field: colour})
            continue
        if code == 1:
            style = replace(style, bold=True)
        elif code == 3:
            style = replace(style, italic=True)
        elif code == 4:
            style = replace(style, underline=params[i][1] if len(params[i]) > 1 else 1)
        elif code == 7:
            style = replace(style, reverse=True)
        elif code == 22:
            style = replace(style, bold=False)
        elif code == 23:
            style = replace(style, italic=False)
        elif code == 24:
            style = replace(style, underline=0)
        elif code == 27:
            style = replace(style, reverse=False)
        elif 30 <= code <= 37:
            style = replace(style, fg=BASIC[code - 30])
        elif code == 39:
            style = replace(style, fg=None)
        elif 40 <= code <= 47:
            style = replace(style, bg=BASIC[code - 40])
        elif code == 49:
            style = replace(style, bg=None)
        elif code == 59:
            style = replace(style, underline_colour=None)
        elif 90 <= code <= 97:
            style = replace(style, fg=BASIC[code - 90 + 8])
        elif 100 <= code <= 107:
            style = replace(style, bg=BASIC[code - 100 + 8])
        i += 1
    return style


def cells(line: str) -> list[tuple[str, Style, int]]:
    """(character, style, width in cells) for one captured line."""
    out: list[tuple[str, Style, int]] = []
    style = Style()
    line = OTHER_ESCAPE.sub("", line)
    position = 0
    for match in SGR.finditer(line + "\x1b[m"):
        for char in line[position : match.start()]:
            if unicodedata.combining(char) and out:
                previous = out[-1]
                out[-1] = (previous[0] + char, previous[1], previous[2])
                continue
            width = 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
            out.append((char, style, width))
        style = apply_sgr(style, match.group(1))
        position = match.end()
    return out


def render(capture: str, out: Path, font_size: int, padding: int = 14) -> None:
    fonts = {
        key: ImageFont.truetype(str(FONT_DIR / name), font_size) for key, name in FONTS.items()
    }
    regular = fonts[(False, False)]
    cell_w = round(regular.getlength("M"))
    ascent, descent = regular.getmetrics()
    cell_h = ascent + descent + 2
    rows = [cells(line) for line in capture.rstrip("\n").split("\n")]
    columns = max((sum(width for *_, width in row) for row in rows), default=1)
    image = Image.new(
        "RGB", (columns * cell_w + 2 * padding, len(rows) * cell_h + 2 * padding), DEFAULT_BG
    )
    draw = ImageDraw.Draw(image)
    for y, row in enumerate(rows):
        x = 0
        top = padding + y * cell_h
        for char, style, width in row:
            fg, bg = style.fg or DEFAULT_FG, style.bg or DEFAULT_BG
            if style.reverse:
                fg, bg = bg, fg
            left = padding + x * cell_w
            box = (left, top, left + width * cell_w, top + cell_h)
            if bg != DEFAULT_BG:
                draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=bg)
            if char in BOX:
                middle_x, middle_y = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
                ends = {"l": (box[0], middle_y), "r": (box[2], middle_y),
                        "u": (middle_x, box[1]), "d": (middle_x, box[3])}  # fmt: skip
                for side in BOX[char]:
                    draw.line(((middle_x, middle_y), ends[side]), fill=fg, width=1)
            elif char.strip():
                font = fonts[(style.bold, style.italic)]
                draw.text((left, top + 1), char, font=font, fill=fg)
            if style.underline:
                colour = style.underline_colour or fg
                base = top + ascent + 3
                if style.underline == 3:  # curly
                    points = [
                        (px, base + (1 if (px // 2) % 2 else -1))
                        for px in range(box[0], box[2] + 1, 2)
                    ]
                    draw.line(points, fill=colour, width=1)
                else:
                    draw.line((box[0], base, box[2] - 1, base), fill=colour, width=1)
            x += width
    image.save(out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--font-size", type=int, default=16)
    args = parser.parse_args()
    render(args.capture.read_text(encoding="utf-8"), args.out, args.font_size)


if __name__ == "__main__":
    main()
