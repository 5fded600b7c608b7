"""Recipe cards: every recipe has exactly one, their templates fill, and bad cards say why."""

import string
import subprocess
import sys
from pathlib import Path

import pytest

from groklab import GroklabError
from groklab.recipes import RECIPES, RecipeContext, _load_all, list_recipes
from groklab.recipes.cards import Card, _read, cards


def test_every_package_recipe_has_one_card_in_its_module_file():
    _load_all()
    package = {name: r for name, r in RECIPES.items() if r.fn.__module__.startswith("groklab.recipes.")}
    assert set(package) == set(cards())
    for name, r in package.items():
        c = cards()[name]
        assert c.source == r.fn.__module__.rsplit(".", 1)[1] + ".toml", name  # the card sits beside its code
        assert (r.paper, r.claim) == (c.paper, c.claim)


def _literal_parts(template: str) -> list[str]:
    return [literal for literal, *_ in string.Formatter().parse(template) if literal]


@pytest.mark.parametrize("quick", [True, False])
def test_every_design_says_what_its_card_says(quick):
    # words() refuses a placeholder without a value and a value without a placeholder, so
    # building each Design checks that its card and its code name the same numbers; the text
    # between the placeholders must then be what the Design carries, in order.
    _load_all()
    for name, c in cards().items():
        design = RECIPES[name].fn(RecipeContext(Path("/tmp/unused"), quick))
        carried = {"why": design.control.why if design.control else "", "falsifier": design.falsifier,
                   "notes": design.notes}
        for field in ("why", "falsifier", "notes"):
            at = 0
            for part in _literal_parts(getattr(c, field)):
                found = carried[field].find(part, at)
                assert found >= 0, f"{name}: the Design's {field} lacks its card's {part!r}"
                at = found + len(part)


def test_words_fill_templates_and_refuse_mismatched_values():
    c = Card("x", "000", "a claim", why="at {steps} steps", falsifier="below {keep:g}x", notes="P in {{50, 120}}")
    assert c.words(steps=10, keep=0.50) == {"why": "at 10 steps", "falsifier": "below 0.5x", "notes": "P in {50, 120}"}
    with pytest.raises(GroklabError, match="card 'x'.*no value for keep"):
        c.words(steps=10)
    with pytest.raises(GroklabError, match="unused values every"):
        c.words(steps=10, keep=1, every=5)


def test_a_bad_card_file_names_the_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('["r"]\npaper = "000"\nclaim = "c"\nfalsfier = "typo"\n')
    with pytest.raises(GroklabError, match=r"card 'r' needs 'paper' and 'claim'.*unknown falsfier"):
        _read(bad)
    bad.write_text('["r"]\nclaim = "c"\n')
    with pytest.raises(GroklabError, match="needs 'paper' and 'claim'"):
        _read(bad)
    bad.write_text('["r"\n')
    with pytest.raises(GroklabError, match="not valid TOML"):
        _read(bad)


def test_listing_reads_the_cards_without_importing_torch():
    code = ("import sys\nfrom groklab.recipes import list_recipes\nnames = list_recipes()\n"
            "assert 'robust-fig1' in names and 'theory-vs-simulation' in names, names\n"
            "assert 'torch' not in sys.modules, 'listing imported torch'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list_recipes()["robust-fig2"].startswith("[000 fig. 2] The sharpness")
