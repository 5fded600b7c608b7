"""Recipe cards: the words of each recipe, kept apart from the code that runs it.

A recipe's claim, the reason its control is the setting where the effect should be absent,
the outcome that would have made its verdict false, and the notes on how it departs from the
authors' settings are prose a researcher reads, reviews and cites; the code beside them
builds arms, measures and judges. Each module ``groklab/recipes/<module>.py`` keeps its
recipes' cards in ``<module>.toml``, one table per recipe::

    ["robust-fig2"]
    paper = "000 fig. 2"
    claim = "The sharpness ... keeps decreasing during training while the network groks."
    why = "Paper 000 (sec. 3.1) explains grokking by ..."        # the control's rationale
    falsifier = "in most seeds sharpness at the end above {keep:g}x its value at fitting, ..."
    notes = "..."                                                 # settings, departures

``paper`` and ``claim`` are plain text. ``why``, ``falsifier`` and ``notes`` may quote the
recipe's numbers through ``str.format`` fields, which the recipe fills with
:func:`words` so the text always states the settings the code runs.
"""

from __future__ import annotations

import functools
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groklab.errors import GroklabError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Card", "cards", "card", "words"]

_HERE = Path(__file__).parent
_TEXT_FIELDS = ("why", "falsifier", "notes")  # the fields that may quote the recipe's numbers


@dataclass(frozen=True)
class Card:
    """One recipe's words; ``why``, ``falsifier`` and ``notes`` are templates (see :func:`words`)."""

    name: str
    paper: str
    claim: str
    why: str = ""
    falsifier: str = ""
    notes: str = ""
    source: str = ""  # the file it was read from, for error messages

    def words(self, **values: Any) -> dict[str, str]:
        """The card's templated fields that it has, filled with ``values``.

        Every value must be used and every field in the templates given, so a renamed number
        cannot silently drop out of (or stay stale in) the text."""
        templates = {f: getattr(self, f) for f in _TEXT_FIELDS if getattr(self, f)}
        wanted = {name for text in templates.values() for _, name, _, _ in string.Formatter().parse(text) if name}
        missing, unused = sorted(wanted - set(values)), sorted(set(values) - wanted)
        if missing or unused:
            raise GroklabError(f"recipe card '{self.name}' ({self.source}): "
                               + "; ".join(([f"no value for {', '.join(missing)}"] if missing else [])
                                           + ([f"unused values {', '.join(unused)}"] if unused else [])))
        return {f: text.format(**values) for f, text in templates.items()}


def _read(path: Path) -> dict[str, Card]:
    try:
        tables = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise GroklabError(f"{path}: not valid TOML ({e})") from None
    allowed = {"paper", "claim", *_TEXT_FIELDS}
    out = {}
    for name, table in tables.items():
        unknown = sorted(set(table) - allowed)
        if unknown or not {"paper", "claim"} <= set(table):
            raise GroklabError(f"{path}: card '{name}' needs 'paper' and 'claim' and may have "
                               f"{', '.join(_TEXT_FIELDS)}" + (f"; unknown {', '.join(unknown)}" if unknown else ""))
        out[name] = Card(name=name, source=path.name, **table)
    return out


@functools.lru_cache(maxsize=None)
def cards() -> dict[str, Card]:
    """Every card of the package's recipe modules, by recipe name (read once, without
    importing the modules: ``groklab reproduce --list`` needs no PyTorch)."""
    out: dict[str, Card] = {}
    for path in sorted(_HERE.glob("*.toml")):
        for name, c in _read(path).items():
            if name in out:
                raise GroklabError(f"recipe card '{name}' is in both {out[name].source} and {path.name}")
            out[name] = c
    return out


def card(name: str) -> Card:
    """The card of recipe ``name``."""
    try:
        return cards()[name]
    except KeyError:
        raise GroklabError(f"no recipe card '{name}' in {_HERE}/*.toml") from None


def words(name: str, **values: Any) -> dict[str, str]:
    """Recipe ``name``'s ``why`` / ``falsifier`` / ``notes`` (those its card has), filled with
    ``values``, e.g. ``weight_decay_design(..., **words("robust-fig2", keep=0.5, decreasing=-0.5))``."""
    return card(name).words(**values)
