"""Collect reproduction outputs into docs/gallery and print the README's gallery table.

    python docs/make_gallery.py OUT_DIR [OUT_DIR ...]

Each OUT_DIR is a `groklab reproduce NAME --quick --out OUT_DIR` output (verdict.json + NAME.png);
the figure and verdict are copied to docs/gallery/NAME.png and docs/gallery/NAME.json.
"""

import json
import shutil
import sys
from pathlib import Path

gallery = Path(__file__).parent / "gallery"
gallery.mkdir(exist_ok=True)
rows = []
for out in map(Path, sys.argv[1:]):
    verdict = json.loads((out / "verdict.json").read_text())
    name = verdict["recipe"]
    shutil.copy(out / verdict["figure"], gallery / f"{name}.png")
    (gallery / f"{name}.json").write_text(json.dumps(verdict, indent=2) + "\n")
    rows.append(verdict)
for v in sorted(rows, key=lambda v: v["recipe"]):
    status = "supported" if v["supported"] else "**not supported**"
    size = "quick" if v["quick"] else "full"
    print(f"| [`{v['recipe']}`](docs/gallery/{v['recipe']}.png) | `groklab reproduce {v['recipe']}{' --quick' if v['quick'] else ''}` "
          f"| {status} ({size}, {v['wall_seconds']:.0f} s on a loaded 2-core CPU) |")
