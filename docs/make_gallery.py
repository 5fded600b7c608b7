"""Collect reproduction outputs into docs/gallery/{quick,full}/ and print the README's rows.

    python docs/make_gallery.py quick OUT_DIR [OUT_DIR ...]
    python docs/make_gallery.py full OUT_DIR [OUT_DIR ...]

Each OUT_DIR is a `groklab reproduce NAME [--quick] --out OUT_DIR` output (verdict.json +
NAME.png). The figure and verdict are copied to docs/gallery/SIZE/NAME.png and NAME.json (the
verdict carries the commit and wall time that made it). The printed row per recipe gives the
verdict, the treatment's criteria and the control's result.
"""

import json
import shutil
import sys
from pathlib import Path


def row(v: dict) -> str:
    """One README table cell: verdict, seeds, criteria (held or failed) and the control."""
    status = "supported" if v["supported"] else "**not supported**"
    parts = [f"{status} ({len(v.get('seeds', [0]))} seeds, {v['wall_seconds'] / 60:.1f} min)"]
    for c in v.get("treatment", {}).get("criteria", []):
        parts.append(f"{'holds' if c['holds'] else 'fails'}: {c['name']}")
    control = v.get("control")
    if control:
        parts.append("control: " + ("not run" if not control["ran"]
                                    else "effect absent" if not control["holds"] else "effect also present"))
    return "; ".join(parts)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("quick", "full"):
        sys.exit("usage: python docs/make_gallery.py quick|full OUT_DIR [OUT_DIR ...]")
    size, outs = argv[0], map(Path, argv[1:])
    gallery = Path(__file__).parent / "gallery" / size
    gallery.mkdir(parents=True, exist_ok=True)
    for out in outs:
        verdict = json.loads((out / "verdict.json").read_text())
        name = verdict["recipe"]
        shutil.copy(out / verdict["figure"], gallery / f"{name}.png")
        (gallery / f"{name}.json").write_text(json.dumps(verdict, indent=2) + "\n")
    for path in sorted(gallery.glob("*.json")):
        v = json.loads(path.read_text())
        print(f"| [`{v['recipe']}`](docs/gallery/{size}/{v['recipe']}.png) | {row(v)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
