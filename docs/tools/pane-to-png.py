#!/usr/bin/python3
"""Renders a terminal capture with ANSI colours (tmux capture-pane -e -p) as a PNG, for the docs.

    tmux capture-pane -e -p -t SESSION > pane.txt
    /usr/bin/python3 docs/tools/pane-to-png.py pane.txt docs/watch-raftcluster.png

Needs Pillow (Debian: python3-pil) and DejaVu Sans Mono (fonts-dejavu-core). Understands the SGR
codes the live view uses (0 reset, 1 bold, 31 red) and drops other escape sequences.
"""
import re
import sys
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
BG, FG, RED = (30, 30, 30), (220, 220, 220), (240, 80, 80)
ESCAPE = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")

lines = open(sys.argv[1], encoding="utf-8").read().rstrip("\n").split("\n")
while lines and not ESCAPE.sub("", lines[-1]).strip():
    lines.pop()
size = 14
regular, bold = ImageFont.truetype(FONT, size), ImageFont.truetype(BOLD, size)
cell_w, cell_h = regular.getbbox("M")[2], size + 4
cols = max(len(ESCAPE.sub("", l)) for l in lines)
img = Image.new("RGB", (cols * cell_w + 20, len(lines) * cell_h + 20), BG)
draw = ImageDraw.Draw(img)
for row, line in enumerate(lines):
    x, colour, font, pos = 0, FG, regular, 0
    for m in list(ESCAPE.finditer(line)) + [None]:
        text = line[pos:m.start() if m else len(line)]
        for ch in text:
            draw.text((10 + x * cell_w, 10 + row * cell_h), ch, fill=colour, font=font)
            x += 1
        if m is None:
            break
        pos = m.end()
        if m.group(2) == "m":
            for code in (m.group(1) or "0").split(";"):
                if code in ("0", ""):
                    colour, font = FG, regular
                elif code == "1":
                    font = bold
                elif code == "31":
                    colour = RED
img.save(sys.argv[2], optimize=True)
