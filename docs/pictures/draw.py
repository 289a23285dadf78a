"""The README's pictures: what our Slack renderer really sends, drawn as Slack shows it.

    .venv/bin/pip install pillow && .venv/bin/python docs/pictures/draw.py

regenerates every picture in this folder. Each is the Block Kit of
:mod:`usage_bot.frontends.slack.render` for real inputs at one moment (:data:`NOW`): the
simulated account (:func:`usage_bot._simulator.simulated_usage`) parsed and reported by
the bot's own code, and the alert engine's threshold alert at 96 %. :func:`render_blocks` draws any
blocks, so a new picture is one line in :func:`pictures`. It reads the mrkdwn our renderer
writes (``*bold*``, ``_italic_``, ```code```, the emoji it uses, ``<!date^…>`` shown as a
reader in :data:`READER_ZONE` sees it); a bar of ``█░`` in code is drawn as a bar.

Each PNG carries the text it draws (:func:`text_of`) in its ``usage-bot:text`` chunk, which
``tests/test_pictures.py`` holds against what the renderer says today: a stale picture is
noticed. Only drawing needs Pillow.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from usage_bot._alerts import ThresholdCrossed
from usage_bot._model import AccountUsage, Limit, parse_usage, severity_for
from usage_bot._notify import AlertMessage
from usage_bot._report import build_report
from usage_bot._simulator import simulated_usage
from usage_bot.frontends import Reply
from usage_bot.frontends.slack.render import render_alert, render_reply

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 7, 21, 13, 51, 30, tzinfo=UTC)
# The simulation's start: at NOW its second 5-hour window is at 96 %, 28 minutes from its end.
ORIGIN = datetime(2026, 7, 21, 4, 20, tzinfo=UTC)
READER_ZONE = timezone(timedelta(hours=2), "CEST")  # a reader in Berlin in summer, 24-hour clock
ACCOUNT = "team"
TEXT_KEY = "usage-bot:text"

Block = dict[str, Any]
Run = tuple[str, str]  # (style, text); style: plain, bold, italic, code, emoji or gap


@dataclass(frozen=True, slots=True)
class Picture:
    """A picture: its file here, the blocks it shows, the grey note above the message."""

    name: str
    blocks: Sequence[Block]
    title: str | None = None


def pictures() -> list[Picture]:
    """Every picture of the docs, each from the real renderer."""
    snapshot = parse_usage(simulated_usage(NOW, ORIGIN), fetched_at=NOW)
    report = build_report(AccountUsage(ACCOUNT, snapshot, checked_at=NOW), NOW)
    session = next(limit for limit in snapshot.limits if limit.id == "five_hour")
    answer = render_reply(Reply("usage", reports=(report,))).blocks
    return [
        Picture("slack-answer.png", answer, title="Only visible to you"),
        Picture("slack-alert.png", render_alert(threshold_alert(session, level=95)).blocks),
    ]


def threshold_alert(limit: Limit, *, level: float) -> AlertMessage:
    """The alert the engine posts when ``limit`` passes ``level`` in its window."""
    return ThresholdCrossed(
        account=ACCOUNT,
        limit_id=limit.id,
        label=limit.label,
        level=level,
        percent=limit.percent,
        window=limit.resets_at,
        resets_at=limit.resets_at,
        severity=severity_for(level),
        at=NOW,
    ).message()


# -- what a reader sees: blocks as lines of styled runs (no Pillow needed) --------------------

_MRKDWN = re.compile(
    r"<!date\^(?P<epoch>\d+)\^(?P<format>[^|>]*)(?:\|[^>]*)?>"
    r"|:(?P<emoji>[a-z][a-z0-9_+-]*):"
    r"|`(?P<code>[^`\n]+)`"
    r"|(?<!\w)\*(?P<bold>[^*\n]+)\*(?!\w)"
    r"|(?<!\w)_(?P<italic>[^_\n]+)_(?!\w)"
)
_PLAIN_TEXT = re.compile(r":(?P<emoji>[a-z][a-z0-9_+-]*):")  # plain_text with "emoji": true
_MARKUP = {"bold": "*{}*", "italic": "_{}_", "code": "`{}`", "emoji": ":{}:"}


def slack_date(epoch: int, fmt: str, *, now: datetime = NOW) -> str:
    """A ``<!date^epoch^fmt|…>`` token as Slack shows it to a reader in :data:`READER_ZONE`.

    A day's name that opens the format is capitalised, as Slack does (jsx-slack and
    Slack::BlockKit, which mimic it, say so): "Today 16:20", "Jul 28, 2026 06:20".
    """
    moment = datetime.fromtimestamp(epoch, READER_ZONE)
    short = f"{moment:%b} {moment.day}, {moment.year}"
    days = (moment.date() - now.astimezone(READER_ZONE).date()).days
    pretty = {-1: "yesterday", 0: "today", 1: "tomorrow"}.get(days, short)
    if fmt.startswith("{date_short_pretty}"):
        pretty = pretty[:1].upper() + pretty[1:]
    words = {
        "{date_short_pretty}": pretty,
        "{date_short}": short,
        "{date_num}": f"{moment:%Y-%m-%d}",
        "{time}": f"{moment:%H:%M}",
    }
    return re.sub(r"\{\w+\}", lambda token: words.get(token[0], token[0]), fmt)


def runs(text: str, *, mrkdwn: bool = True) -> list[Run]:
    """One line of a text object as styled runs, its dates as the reader sees them."""
    found: list[Run] = []
    at = 0
    for match in (_MRKDWN if mrkdwn else _PLAIN_TEXT).finditer(text):
        found.append(("plain", _unescape(text[at : match.start()])))
        if match.groupdict().get("epoch"):
            found.append(("plain", slack_date(int(match["epoch"]), match["format"])))
        else:
            style = match.lastgroup or "plain"
            found.append((style, _unescape(match[style])))
        at = match.end()
    found.append(("plain", _unescape(text[at:])))
    return [run for run in found if run[1]]


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def read(blocks: Sequence[Block]) -> list[tuple[str, list[list[Run]]]]:
    """Each block as its kind and its lines (a context's elements share one line)."""
    shown: list[tuple[str, list[list[Run]]]] = []
    for block in blocks:
        kind, text = block["type"], block.get("text", {})
        mrkdwn = text.get("type") == "mrkdwn"
        if kind in ("header", "section"):
            shown.append((kind, [runs(line, mrkdwn=mrkdwn) for line in text["text"].split("\n")]))
        elif kind == "context":
            line: list[Run] = []
            for element in block["elements"]:
                line += [("gap", "  ")] if line else []
                line += runs(element["text"], mrkdwn=element["type"] == "mrkdwn")
            shown.append((kind, [line]))
        elif kind == "divider":
            shown.append((kind, [[]]))
        else:
            raise ValueError(f"draw.py cannot draw a {kind} block yet: teach read() and _paint()")
    return shown


def text_of(blocks: Sequence[Block], *, title: str | None = None) -> str:
    """What a picture shows, a line per line of text, marked up as it is drawn."""
    lines = [f"[title] {title}"] if title else []
    lines.append(f"[name] usage-bot APP {NOW.astimezone(READER_ZONE):%H:%M}")
    for kind, rows in read(blocks):
        for row in rows:
            marked = "".join(_MARKUP.get(style, "{}").format(text) for style, text in row)
            lines.append(f"[{kind}] {marked}".rstrip())
    return "\n".join(lines) + "\n"


# -- drawing -----------------------------------------------------------------------------------

SCALE, WIDTH, PAD, AVATAR = 2, 720, 16, 36  # logical pixels, drawn at SCALE times
TEXT_X = PAD + AVATAR + 8
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FACES = {"plain": "DejaVuSans", "bold": "DejaVuSans-Bold", "italic": "DejaVuSans-Oblique"}
INK, GREY, EDGE, WHITE = (29, 28, 29), (97, 96, 97), (221, 221, 221), (255, 255, 255)
CODE_INK, CODE_BACK, CODE_EDGE = (224, 30, 90), (246, 246, 246), (225, 225, 225)
BAR_EMPTY = (235, 198, 210)  # CODE_INK faded into CODE_BACK: the unused part of a bar


@dataclass(frozen=True, slots=True)
class Kind:
    """How a kind of block is set: text size, line height, space above, ink, emoji size."""

    size: int
    line: int
    above: int
    ink: tuple[int, int, int] = INK
    emoji: int = 20


KINDS = {
    "header": Kind(size=17, line=26, above=0, emoji=22),
    "section": Kind(size=14, line=22, above=8),
    "context": Kind(size=12, line=18, above=8, ink=GREY, emoji=16),
    "divider": Kind(size=12, line=9, above=8),
}


def px(value: float) -> int:
    return round(value * SCALE)


@functools.cache
def font(face: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu when installed, else Pillow's own font (the pictures then differ a little)."""
    from PIL import ImageFont

    path = FONT_DIR / f"{face}.ttf"
    return ImageFont.truetype(path, px(size)) if path.exists() else ImageFont.load_default(px(size))


def _font(style: str, kind: str) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if style == "code":
        return font("DejaVuSansMono", KINDS[kind].size - 1)
    return font(FACES["bold" if kind == "header" else style], KINDS[kind].size)


def _width(style: str, text: str, kind: str) -> float:
    if style in ("gap", "emoji"):
        return px(10 if style == "gap" else KINDS[kind].emoji + 3)
    return _font(style, kind).getlength(text) + (px(8) if style == "code" else 0)


def _wrap(line: list[Run], kind: str) -> Iterator[list[Run]]:
    """A line in the rows it takes: wrapped between words; spans and emoji kept whole."""
    row: list[Run] = []
    x, room = 0.0, px(WIDTH - TEXT_X - PAD)
    for style, whole in line:
        if style == "emoji" and whole not in EMOJI:
            style, whole = "plain", f":{whole}:"  # as Slack shows a name it does not know
        for text in re.findall(r"\S+\s*|\s+", whole) if style in FACES else [whole]:
            if row and x + _width(style, text.rstrip(), kind) > room:
                yield row
                row, x, text = [], 0.0, text.lstrip() if style in FACES else text
            row.append((style, text))
            x += _width(style, text, kind)
    yield row


def _paint(canvas: ImageDraw.ImageDraw | None, blocks: Sequence[Block], title: str | None) -> int:
    """Draw the message on ``canvas`` (None: only measure it); returns its height."""
    y = px(PAD)
    if title:
        if canvas:
            _eye(canvas, px(TEXT_X), y + px(7))
            canvas.text((px(TEXT_X + 20), y + px(13)), title, GREY, font("DejaVuSans", 12), "ls")
        y += px(22)
    if canvas:
        _app(canvas, y)
    top, y = y, y + px(24)
    for kind, lines in read(blocks):
        y += px(KINDS[kind].above)
        for row in (row for line in lines for row in _wrap(line, kind)):
            if canvas and kind == "divider":
                canvas.line([(px(TEXT_X), y + px(4)), (px(WIDTH - PAD), y + px(4))], EDGE, px(1))
            elif canvas:
                _row(canvas, row, kind, y)
            y += px(KINDS[kind].line)
    return max(y, top + px(AVATAR)) + px(PAD)


def _row(canvas: ImageDraw.ImageDraw, row: list[Run], kind: str, top: int) -> None:
    set_as = KINDS[kind]
    ascent, descent = _font("plain", kind).getmetrics()
    baseline = top + (px(set_as.line) + ascent - descent) // 2
    x = float(px(TEXT_X))
    for style, text in row:
        width = _width(style, text, kind)
        if style == "emoji":
            size = px(set_as.emoji)
            y = round(baseline - px(set_as.size) * 0.36 - size / 2)
            _emoji(canvas, text, round(x) + px(1), y, size)
        elif style == "code":
            _code(canvas, text, kind, x, baseline, width)
        elif style != "gap":
            canvas.text((x, baseline), text, set_as.ink, _font(style, kind), "ls")
        x += width


def _code(canvas: ImageDraw.ImageDraw, text: str, kind: str, x: float, base: int, w: float) -> None:
    """A code span: its grey box, and the text in it; the cells of a bar make one bar."""
    size, mono = px(KINDS[kind].size), _font("code", kind)
    top, bottom = base - round(size * 0.92), base + round(size * 0.3)
    canvas.rounded_rectangle((x, top, x + w - px(2), bottom), px(3), CODE_BACK, CODE_EDGE, px(1))
    x += px(4)
    for char in text:
        advance = mono.getlength(char)
        if char in "█░":
            cell = (round(x), top + px(4), round(x + advance), bottom - px(4))
            canvas.rectangle(cell, CODE_INK if char == "█" else BAR_EMPTY)
        else:
            canvas.text((x, base), char, CODE_INK, mono, "ls")
        x += advance


def _app(canvas: ImageDraw.ImageDraw, top: int) -> None:
    """The app's square avatar (a quota meter, white on Claude's orange), name, tag, time."""
    x, y, size = px(PAD), top, px(AVATAR)
    canvas.rounded_rectangle((x, y, x + size, y + size), px(7), (217, 119, 87))
    for n, height in enumerate((0.3, 0.5, 0.72)):
        left, foot = x + size * (0.22 + n * 0.2), y + size * 0.82
        canvas.rounded_rectangle(
            (left, foot - size * height, left + size * 0.14, foot), px(1.5), WHITE
        )
    name, tag = font(FACES["bold"], 14), font(FACES["bold"], 9)
    x, baseline = px(TEXT_X), top + px(15)
    canvas.text((x, baseline), "usage-bot", INK, name, "ls")
    x += round(name.getlength("usage-bot")) + px(6)
    right = x + round(tag.getlength("APP")) + px(8)
    canvas.rounded_rectangle(
        (x, baseline - px(12), right, baseline + px(3)), px(3), (232, 232, 232)
    )
    canvas.text((x + px(4), baseline - px(1)), "APP", GREY, tag, "ls")
    posted = f"{NOW.astimezone(READER_ZONE):%H:%M}"
    canvas.text((right + px(8), baseline), posted, GREY, font("DejaVuSans", 12), "ls")


def _eye(canvas: ImageDraw.ImageDraw, x: int, middle: int) -> None:
    """Slack's mark of a message only one reader sees: an almond with its pupil."""
    w, r = px(15), px(2.4)
    canvas.ellipse((x, middle - px(4.5), x + w, middle + px(4.5)), None, GREY, px(1.2))
    canvas.ellipse((x + w / 2 - r, middle - r, x + w / 2 + r, middle + r), GREY)


# -- emoji: those our renderer uses, as shapes in a unit square ---------------------------------

GREEN, YELLOW, RED, BLUE = (120, 177, 89), (253, 203, 88), (221, 46, 68), (59, 136, 195)
SAND, BROWN, STEEL = (255, 172, 51), (191, 105, 82), (153, 170, 181)
ROUND = (0.06, 0.06, 0.94, 0.94)
EMOJI: dict[str, list[tuple[str, tuple[float, ...], tuple[int, int, int]]]] = {
    "large_green_circle": [("ellipse", ROUND, GREEN)],
    "large_yellow_circle": [("ellipse", ROUND, YELLOW)],
    "red_circle": [("ellipse", ROUND, RED)],
    "warning": [
        ("polygon", (0.5, 0.06, 0.97, 0.9, 0.03, 0.9), YELLOW),
        ("box", (0.45, 0.32, 0.55, 0.64), INK),
        ("ellipse", (0.44, 0.69, 0.56, 0.81), INK),
    ],
    "white_check_mark": [
        ("box", ROUND, GREEN),
        ("line", (0.25, 0.52, 0.43, 0.7, 0.76, 0.32), WHITE),
    ],
    "arrows_counterclockwise": [
        ("box", ROUND, BLUE),
        ("arc 30 150", (0.25, 0.25, 0.75, 0.75), WHITE),
        ("arc 210 330", (0.25, 0.25, 0.75, 0.75), WHITE),
        ("polygon", (0.78, 0.52, 0.8, 0.68, 0.63, 0.58), WHITE),
        ("polygon", (0.22, 0.48, 0.2, 0.32, 0.37, 0.42), WHITE),
    ],
    "bulb": [
        ("ellipse", (0.2, 0.04, 0.8, 0.64), YELLOW),
        ("polygon", (0.3, 0.5, 0.7, 0.5, 0.64, 0.72, 0.36, 0.72), YELLOW),
        ("box", (0.34, 0.72, 0.66, 0.94), STEEL),
    ],
    "moneybag": [
        ("ellipse", (0.1, 0.3, 0.9, 0.98), (253, 216, 136)),
        ("polygon", (0.3, 0.06, 0.7, 0.06, 0.6, 0.34, 0.4, 0.34), (253, 216, 136)),
        ("box", (0.32, 0.28, 0.68, 0.36), BROWN),
        ("text $", (0.5, 0.66), BROWN),
    ],
    "hourglass_flowing_sand": [
        ("polygon", (0.24, 0.12, 0.76, 0.12, 0.54, 0.5, 0.76, 0.88, 0.24, 0.88, 0.46, 0.5), EDGE),
        ("polygon", (0.34, 0.3, 0.66, 0.3, 0.5, 0.5), SAND),
        ("polygon", (0.5, 0.6, 0.72, 0.86, 0.28, 0.86), SAND),
        ("box", (0.16, 0.04, 0.84, 0.14), (138, 75, 56)),
        ("box", (0.16, 0.86, 0.84, 0.96), (138, 75, 56)),
    ],
    "lock": [
        ("arc 180 360", (0.29, 0.1, 0.71, 0.8), STEEL),
        ("box", (0.16, 0.44, 0.84, 0.96), SAND),
    ],
    "credit_card": [
        ("box", (0.04, 0.2, 0.96, 0.82), YELLOW),
        ("box", (0.04, 0.32, 0.96, 0.44), INK),
        ("box", (0.14, 0.56, 0.4, 0.68), SAND),
    ],
}


def _emoji(canvas: ImageDraw.ImageDraw, name: str, x: int, y: int, size: int) -> None:
    for shape, spec, colour in EMOJI[name]:
        kind, *args = shape.split()
        at = [(x + spec[i] * size, y + spec[i + 1] * size) for i in range(0, len(spec), 2)]
        if kind == "ellipse":
            canvas.ellipse(at, colour)
        elif kind == "box":
            canvas.rounded_rectangle(at, size * 0.1, colour)
        elif kind == "polygon":
            canvas.polygon(at, colour)
        elif kind == "line":
            canvas.line(at, colour, round(size * 0.11), "curve")
        elif kind == "arc":
            canvas.arc(at, int(args[0]), int(args[1]), colour, round(size * 0.1))
        elif kind == "text":
            glyph = font(FACES["bold"], round(size * 0.5 / SCALE))
            canvas.text(at[0], args[0], colour, glyph, "mm")


# -- the pictures ------------------------------------------------------------------------------


def draw(blocks: Sequence[Block], *, title: str | None = None) -> Image.Image:
    """The message as a Slack reader sees it, on a white card, at :data:`SCALE` times."""
    from PIL import Image, ImageDraw

    height = _paint(None, blocks, title)
    image = Image.new("RGBA", (px(WIDTH), height), (0, 0, 0, 0))
    canvas = ImageDraw.Draw(image)
    canvas.rounded_rectangle((0, 0, image.width - 1, height - 1), px(8), WHITE, EDGE, px(1))
    _paint(canvas, blocks, title)
    return image


def render_blocks(blocks: Sequence[Block], *, path: Path, title: str | None = None) -> None:
    """Draw ``blocks`` into the PNG at ``path``, with the text it shows in its metadata."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(TEXT_KEY, text_of(blocks, title=title), zip=True)
    draw(blocks, title=title).save(path, pnginfo=info, optimize=True)


def main() -> None:
    for picture in pictures():
        render_blocks(picture.blocks, path=HERE / picture.name, title=picture.title)
        print(HERE / picture.name)


if __name__ == "__main__":
    main()
