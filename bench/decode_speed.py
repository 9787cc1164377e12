"""The first decode of a data set: how long it takes, and when a page first sees it move.

    python bench/decode_speed.py --data PATH [--repeat 1] [--code DIR] [--out FILE]

Runs `python -m tinyviz data PATH` into a fresh, empty cache (`TINYVIZ_CACHE` in a temporary
folder, removed afterwards), as a visitor's first page or `tinyviz data` would, and follows
it from outside, as a page does: the decode task's progress file (`<cache>/jobs/decode-*`,
read every 0.05 s) and the command's terminal bar on stderr. Prints, per run:

- `first word`: seconds until the progress file says anything (what the page shows first);
- `first count`: seconds until a count of decoded images above zero is reported (in the
  progress file, or on the terminal bar for code without one);
- `total`: seconds until the command exits (the cache is complete);
- the images per second over the whole decode.

`--code DIR` runs another checkout's tinyviz (for a before/after on the same machine).
Nothing is timed inside tinyviz: only from outside, as a visitor waits.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BAR = re.compile(r"(\d+)/(\d+)")


def one(data: Path, code: Path) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="tinyviz-decode-"))
    env = {**os.environ, "TINYVIZ_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinyviz", "data", str(data)],
        cwd=code,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = {"word": None, "count": None}

    def bar() -> None:  # the terminal bar: "12000/110000" (carriage returns, no newlines)
        buf = b""
        while chunk := proc.stderr.read1(4096):
            buf = (buf + chunk)[-400:]
            for done, _ in BAR.findall(buf.decode(errors="replace")):
                if int(done) > 0 and seen["count"] is None:
                    seen["count"] = time.monotonic() - start

    reader = threading.Thread(target=bar, daemon=True)
    reader.start()
    while proc.poll() is None:
        for path in (cache / "jobs").glob("decode-*.progress.json"):
            try:
                info = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            now = time.monotonic() - start
            if seen["word"] is None:
                seen["word"] = now
            if info.get("fraction", 0) > 0 and seen["count"] is None:
                seen["count"] = now
        time.sleep(0.05)
    total = time.monotonic() - start
    reader.join(5)
    out = proc.stdout.read().decode()
    shutil.rmtree(cache, ignore_errors=True)
    if proc.returncode:
        raise SystemExit(f"tinyviz data failed: {out[-500:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    images = summary["train"] + summary["val"]
    return {**seen, "total": total, "images": images}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = [
        f"decode of {args.data.name} into an empty cache, code {args.code}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start",
        f"{'run':>4} {'first word':>11} {'first count':>12} {'total':>8} {'images/s':>9}",
    ]
    print("\n".join(lines), flush=True)

    def s(x) -> str:
        return "-" if x is None else f"{x:.1f} s"

    for k in range(args.repeat):
        r = one(args.data.resolve(), args.code)
        line = (
            f"{k + 1:>4} {s(r['word']):>11} {s(r['count']):>12} {s(r['total']):>8} "
            f"{r['images'] / r['total']:>9,.0f}"
        )
        print(line, flush=True)
        lines.append(line)
    lines.append(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(lines[-1])
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
