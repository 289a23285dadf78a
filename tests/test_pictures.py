"""The docs' pictures (docs/pictures/): whole PNGs, and not stale.

Each picture carries the text it draws; that text must be what ``docs/pictures/draw.py``
makes of the Slack renderer's output today, and, where Pillow and the DejaVu fonts are at
hand, drawing it again gives a picture of the same size. Pixels are not compared: they
change with Pillow's and FreeType's versions, the words and the layout do not.
"""

from __future__ import annotations

import importlib.util
import re
import struct
import sys
import zlib
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parent.parent
PICTURES = ROOT / "docs" / "pictures"
REDRAW = (
    "a picture is stale: `.venv/bin/pip install pillow && .venv/bin/python "
    "docs/pictures/draw.py`, look at the pictures, and commit them"
)


def _load_draw() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_pictures_draw", PICTURES / "draw.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up as they are made
    spec.loader.exec_module(module)
    return module


draw = _load_draw()
DRAWN = draw.pictures()


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """The chunks of the PNG at ``path``, each checked against its CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path.name}: its {kind!r} chunk is damaged"
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", png_chunks(path)[0][1][:8])
    return width, height


def png_texts(path: Path) -> dict[str, str]:
    """The PNG's text chunks (tEXt, zTXt, iTXt), by keyword."""
    texts = {}
    for kind, body in png_chunks(path):
        key, _, rest = body.partition(b"\0")
        if kind == b"tEXt":
            texts[key.decode("latin-1")] = rest.decode("latin-1")
        elif kind == b"zTXt":
            texts[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            compressed, text = rest[0], rest[2:].split(b"\0", 2)[2]
            texts[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode()
    return texts


def test_draw_py_makes_every_picture_committed_and_shown() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"\(docs/pictures/([^)]+\.png)\)", readme))
    made = {picture.name for picture in DRAWN}
    committed = {path.name for path in PICTURES.glob("*.png")}
    assert shown <= made
    assert made == committed, REDRAW


@pytest.mark.parametrize("name", sorted(path.name for path in PICTURES.glob("*.png")))
def test_each_picture_is_a_whole_png_of_a_sane_size(name: str) -> None:
    chunks = png_chunks(PICTURES / name)
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (width, depth, colour, interlace) == (2 * 720, 8, 6, 0)  # 720 px at 2x, RGBA
    assert 200 <= height <= 4000
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + width * 4)


@pytest.mark.parametrize("picture", DRAWN, ids=lambda picture: picture.name)
def test_each_picture_shows_what_the_renderer_says_today(picture: draw.Picture) -> None:
    stored = png_texts(PICTURES / picture.name).get(draw.TEXT_KEY)
    assert stored == draw.text_of(picture.blocks, title=picture.title), REDRAW


@pytest.mark.parametrize("picture", DRAWN, ids=lambda picture: picture.name)
def test_each_picture_drawn_again_has_the_same_size(picture: draw.Picture) -> None:
    pytest.importorskip("PIL", reason="draw.py draws with Pillow")
    if not (draw.FONT_DIR / "DejaVuSans.ttf").exists():
        pytest.skip("the pictures are drawn with the DejaVu fonts, which are not installed")
    drawn = draw.draw(picture.blocks, title=picture.title)
    assert drawn.size == png_size(PICTURES / picture.name), REDRAW


def test_the_pictures_show_what_the_readme_says() -> None:
    """The answer: each limit with a bar, its percent and its reset; the alert: the 5-hour
    limit at 96 %, past the 95 % threshold."""
    answer, alert = (draw.text_of(picture.blocks) for picture in DRAWN)
    for label in ("5-hour", "Weekly (all models)", "Weekly (Fable)"):
        assert re.search(rf"\*{re.escape(label)}\*   \*\d+%\*\n.*`[█░]{{10}}`   resets ", answer)
    assert "[header] team: 5-hour limit at 96 %" in alert
    assert "past the 95 % alert threshold" in alert


def test_dates_read_as_slack_shows_them_to_the_reader() -> None:
    def at(**delta: float) -> int:
        return int((draw.NOW + timedelta(**delta)).timestamp())

    shown = "{date_short_pretty} {time}"
    assert draw.slack_date(at(minutes=28, seconds=30), shown) == "Today 16:20"
    assert draw.slack_date(at(hours=10), shown) == "Tomorrow 01:51"
    assert draw.slack_date(at(hours=-16), shown) == "Yesterday 23:51"
    assert draw.slack_date(at(days=7), shown) == "Jul 28, 2026 15:51"
    assert draw.slack_date(at(), "updated {time}") == "updated 15:51"


def test_mrkdwn_reads_as_slack_shows_it() -> None:
    token = f"<!date^{int(draw.NOW.timestamp())}^{{time}}|2026-07-21 13:51 UTC>"
    assert draw.runs(f":bulb: *a &amp; b* `██░` _c_ at {token} &lt;x&gt; :no_such:") == [
        ("emoji", "bulb"),
        ("plain", " "),
        ("bold", "a & b"),
        ("plain", " "),
        ("code", "██░"),
        ("plain", " "),
        ("italic", "c"),
        ("plain", " at "),
        ("plain", "15:51"),
        ("plain", " <x> "),
        ("emoji", "no_such"),
    ]
    assert draw.runs("*not bold* :bulb:", mrkdwn=False) == [
        ("plain", "*not bold* "),
        ("emoji", "bulb"),
    ]
