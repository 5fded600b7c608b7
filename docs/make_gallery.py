"""Collect reproduction outputs into docs/gallery/{quick,full}/ and write the verdict tables.

    python docs/make_gallery.py quick OUT_DIR [OUT_DIR ...]   # copy verdicts and figures in
    python docs/make_gallery.py full OUT_DIR [OUT_DIR ...]
    python docs/make_gallery.py table                          # rewrite docs/gallery/VERDICTS.md, print README rows

Each OUT_DIR is a `groklab reproduce NAME [--quick] --out OUT_DIR` output (verdict.json +
NAME.png). The figure and verdict are copied to docs/gallery/SIZE/NAME.png and NAME.json (the
verdict carries the commit and wall time that made it). VERDICTS.md lists, per recipe and
size, every criterion with its numbers (medians, ranges, each seed, effect sizes) for the
treatment and the control; the README gets one compact row per recipe.
"""

import json
import shutil
import sys
from pathlib import Path

GALLERY = Path(__file__).parent / "gallery"


def _verdicts(size: str) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted((GALLERY / size).glob("*.json"))}


def compact(v: dict) -> str:
    """Verdict, seeds, which criteria held, and the control, in one line."""
    status = "**supported**" if v["supported"] else "not supported"
    held = [c for c in v.get("treatment", {}).get("criteria", [])]
    minutes = v.get("training_wall_seconds", v["wall_seconds"]) / 60
    when = f"{minutes:.0f} min" + (", judged again from its runs" if v.get("reused_runs") else "")
    parts = [f"{status} ({len(v.get('seeds', [0]))} seeds, {when})"]
    if v.get("overrides"):  # a reduced or varied size: say so in the row itself
        parts.append("with `" + " ".join(f"--set {o}" for o in v["overrides"]) + "`")
    failed = [c["name"] for c in held if not c["holds"]]
    parts.append(f"{len(held) - len(failed)}/{len(held)} criteria hold" + (f"; fails: {', '.join(failed)}" if failed else ""))
    control = v.get("control")
    parts.append(f"control {control_state(control)}" if control else "no control")
    return "; ".join(parts)


def control_state(control: dict) -> str:
    """What the control showed, in words: a control that meets some criteria but not all counts
    as showing no effect in the verdict, and says how many it met."""
    if not control["ran"]:
        return "not run"
    if control["holds"]:
        return "**shows the effect too**"
    criteria = control.get("criteria", [])
    met = sum(c["holds"] for c in criteria)
    return "shows no effect" if not met else f"meets only {met}/{len(criteria)} criteria"


def details(v: dict) -> list[str]:
    """Markdown lines: every criterion with its numbers, for the treatment and the control."""
    reused = ""
    if v.get("reused_runs"):
        reused = (f" ({v['reused_runs']} finished runs read back and judged by this commit; trained by "
                  f"`{v.get('trained_by_commit', '?')}` in {v.get('training_wall_seconds', 0) / 60:.1f} min)")
    lines = [f"- verdict: {'supported' if v['supported'] else 'not supported'}; commit `{v.get('commit', '?')}`{reused}, "
             f"{v['wall_seconds'] / 60:.1f} min, seeds {v.get('seeds')}", f"- size: {v.get('size', '')}"]
    for part in ("treatment", "control"):
        entry = v.get(part)
        if not entry:
            continue
        if part == "control":
            lines.append(f"- control `{' '.join(entry['overrides'])}`: {control_state(entry)}")
        for c in entry.get("criteria", []):
            lines.append(f"  - {part}, {'holds' if c['holds'] else 'FAILS'}: **{c['name']}**: {c['detail']}")
    return lines


def table() -> None:
    quick, full = _verdicts("quick"), _verdicts("full")
    try:  # every registered recipe gets a row, run or not
        from groklab.recipes import list_recipes

        registered = set(list_recipes())
    except ImportError:
        registered = set()
    names = sorted(set(quick) | set(full) | registered)
    doc = ["# Verdicts of the reproductions", "",
           "Made by `python docs/make_gallery.py table` from the JSON files beside this one.", ""]
    for name in names:
        doc.append(f"## `{name}`")
        known = quick.get(name) or full.get(name)
        doc += ["", f"Claim: {known['claim']}" if known else "Not run at either size yet.", ""]
        for size, verdicts in (("quick", quick), ("full", full)):
            if name in verdicts:
                doc += [f"**{size}** ([figure]({size}/{name}.png))", ""] + details(verdicts[name]) + [""]
            else:
                doc += [f"**{size}**: not run yet", ""]
    (GALLERY / "VERDICTS.md").write_text("\n".join(doc) + "\n")
    print("| recipe | quick | full |\n|---|---|---|")
    for name in names:
        cells = [f"[{compact(v[name])}](docs/gallery/{size}/{name}.png)" if name in v else "not run yet"
                 for size, v in (("quick", quick), ("full", full))]
        print(f"| [`{name}`](docs/gallery/VERDICTS.md#{name}) | {cells[0]} | {cells[1]} |")


def collect(size: str, outs: list[str]) -> None:
    target = GALLERY / size
    target.mkdir(parents=True, exist_ok=True)
    for out in map(Path, outs):
        verdict = json.loads((out / "verdict.json").read_text())
        name = verdict["recipe"]
        shutil.copy(out / verdict["figure"], target / f"{name}.png")
        (target / f"{name}.json").write_text(json.dumps(verdict, indent=2) + "\n")


def main(argv: list[str]) -> None:
    if argv[:1] == ["table"]:
        table()
    elif argv[:1] in (["quick"], ["full"]):
        collect(argv[0], argv[1:])
    else:
        sys.exit("usage: python docs/make_gallery.py quick|full OUT_DIR [OUT_DIR ...]  |  table")


if __name__ == "__main__":
    main(sys.argv[1:])
