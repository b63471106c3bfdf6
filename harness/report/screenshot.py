"""Render report.html in headless Chromium to PNG screenshots, to check what a reader actually sees.

`python -m harness.report.screenshot RUN_DIR [--chromium PATH]` writes RUN_DIR/screenshots/page-<i>.png, one
per viewport-height slice of the page (Chromium's --screenshot captures one window, so the page is shot at
full height and that image is split). Needs Debian's `chromium` (`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.core.errors import ConvtxError

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]


def find_chromium(explicit: str | None = None) -> str:
    for cand in [explicit] if explicit else ["chromium", "chromium-browser", "google-chrome"]:
        path = shutil.which(cand) if cand else None
        if path:
            return path
    raise ConvtxError("no Chromium found (install Debian's `chromium`, or pass --chromium PATH)")


def screenshot(
    run_dir: Path, chromium: str | None = None, width: int = 1300, height: int = 9000, slice_px: int = 1500
) -> list[Path]:
    html = Path(run_dir) / "report.html"
    if not html.exists():
        raise ConvtxError(f"{html}: no report.html (run `convtx report {run_dir}` first)")
    exe = find_chromium(chromium)
    out_dir = Path(run_dir) / "screenshots"
    out_dir.mkdir(exist_ok=True)
    full = out_dir / "full.png"
    with tempfile.TemporaryDirectory() as profile:
        p = subprocess.run(
            [
                exe,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={full}",
                html.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if p.returncode != 0 or not full.exists():
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConvtxError(f"{exe}: screenshot of {html} failed (exit {p.returncode}): {tail}")
    import matplotlib.image as mpimg

    img = mpimg.imread(full)
    import numpy as np

    rows = np.nonzero((img[:, :, :3] < 0.98).any(axis=(1, 2)))[0]  # trim the blank bottom
    bottom = min(img.shape[0], int(rows[-1]) + 20) if rows.size else img.shape[0]
    paths = []
    for i, top in enumerate(range(0, bottom, slice_px)):
        part = out_dir / f"page-{i + 1}.png"
        mpimg.imsave(part, img[top : min(bottom, top + slice_px)])
        paths.append(part)
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.report.screenshot")
    ap.add_argument("run_dir")
    ap.add_argument("--chromium")
    ap.add_argument("--height", type=int, default=9000, help="page height to capture, px")
    args = ap.parse_args(argv)
    try:
        for p in screenshot(Path(args.run_dir), args.chromium, height=args.height):
            print(p)
    except ConvtxError as e:
        print(f"convtx: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
