"""Render a run's report.html headless and save screenshots (the page, and each plot) for docs/.

    .venv/bin/python benchmarks/report_screenshot.py runs/demo --out docs/screenshots

Needs a Chromium binary (Debian: ``apt-get install -y chromium``); nothing is fetched by the page
itself (it is self-contained). The page is shot at 1200 px wide and the PNGs are palette-reduced
with Pillow so they stay small. Prints the files written and their sizes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no Chromium found: apt-get install -y chromium")


def shoot(html: Path, png: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={png}", html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)


def small_png(src: Path, dst: Path, crop_height: int | None = None) -> int:
    image = Image.open(src).convert("RGB")
    if crop_height is not None:
        image = image.crop((0, 0, image.width, min(crop_height, image.height)))
    image.quantize(colors=64).save(dst, optimize=True)
    return dst.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--height", type=int, default=2600, help="page height shot (px)")
    args = parser.parse_args()
    html = args.run_dir / "report.html"
    if not html.is_file():
        sys.exit(f"{html}: not found (run `torchslim run ... --out {args.run_dir}` first)")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "page.png"
        shoot(html, raw, 1200, args.height)
        page = args.out / "report_html.png"
        print(f"{page}: {small_png(raw, page)} bytes")
    for plot in sorted(args.run_dir.glob("accuracy_vs_*.png")):
        dst = args.out / plot.name
        print(f"{dst}: {small_png(plot, dst)} bytes")


if __name__ == "__main__":
    main()
