"""report.html as a browser draws it: headless Chromium renders a fixture report
(no lab needed) and the screenshot must show a page, with the failed steps in red.

Chromium comes from the Debian package ``chromium``; without it these tests skip.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

from lab.model.load import load_topology
from lab.model.plan import make_plan
from lab.report.html import write_html

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "data" / "report" / "star-fail"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FAIL_RED = (0xC6, 0x28, 0x28)  # --bad in templates/report.css
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGBA/RGB pixels of an 8-bit non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            bpp = 4 if ctype == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(v for k, v in enumerate(line) if k % 4 != 3))
        prev = line
    return width, height, rows


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(dir=tmp) as profile:
        return subprocess.run(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120
        )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("report") / "star-fail"
    shutil.copytree(FIXTURE, d)
    summary = json.loads((d / "summary.json").read_text())
    return write_html(summary, make_plan(load_topology(REPO / "topologies" / "star.yaml")), d)


def test_the_screenshot_shows_a_page_with_red_failed_steps(report: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    run = _chromium([f"--screenshot={png}", "--window-size=1280,2000", report.as_uri()], tmp_path)
    assert png.is_file(), f"no screenshot: {run.stderr[-2000:]}"
    width, height, rows = read_png(png)
    assert (width, height) == (1280, 2000)
    pixels = [tuple(row[i : i + 3]) for row in rows[::4] for i in range(0, len(row), 12)]
    colours = set(pixels)
    assert len(colours) > 200, f"only {len(colours)} colours: the page looks blank"
    red = sum(1 for p in pixels if all(abs(a - b) <= 6 for a, b in zip(p, FAIL_RED)))
    assert red > 100, f"only {red} sampled pixels in the failure red {FAIL_RED}"


def test_the_browser_sees_the_failed_steps_and_the_diagram(report: Path, tmp_path: Path) -> None:
    run = _chromium(["--dump-dom", report.as_uri()], tmp_path)
    dom = run.stdout
    assert 'id="step-01"' in dom and 'id="step-05"' in dom
    assert dom.count('class="step st-failed step-bad"') == 2
    assert dom.count('class="step st-passed"') == 4
    for node in ("s1", "dns", "dhcp", "mail", "pc1", "pc2"):
        assert f'data-node="{node}"' in dom


def test_a_link_opens_its_layer_view_and_only_that_one(tmp_path: Path) -> None:
    from tests.unit.test_report_layers import report_with_layers

    plan = make_plan(load_topology(REPO / "topologies" / "star.yaml"))
    result, d, info = report_with_layers(tmp_path, plan)
    page = write_html({**info["summary"], "wire": result.wire}, plan, d)
    views = result.wire["layers"]["views"]
    target = views[4]["id"]
    dom = _chromium(["--dump-dom", f"{page.as_uri()}#{target}"], tmp_path).stdout
    details = re.findall(r'<details class="layer-view" id="(ly-\d+)"( open="")?', dom)
    assert len(details) == len(views)
    assert [i for i, opened in details if opened] == [target]  # collapsed, but for the one asked for
    assert dom.count("OSI 2 · data link") == len(views) + 1  # every view names its layers, as the legend does
