"""The README's generated blocks are what the committed JSONs render (``sims/docs.py``)."""

from __future__ import annotations

import pytest

from sims import docs


def _readme() -> str:
    with open(docs.README) as f:
        return f.read()


def test_every_block_is_known_and_present():
    names = docs.blocks_in(_readme())
    assert sorted(names) == sorted(docs.BLOCKS), "README markers and sims.docs.BLOCKS disagree"


@pytest.mark.parametrize("name", sorted(docs.BLOCKS))
def test_block_matches_its_json(name):
    text = _readme()
    body = next(m.group("body") for m in docs._BLOCK.finditer(text) if m.group("name") == name)
    assert body.strip() == docs.render(name), f"run `python -m sims.docs` after regenerating {docs.BLOCKS[name][0]}"


def test_a_changed_number_is_caught():
    """Perturb one rendered number: the check must notice."""
    text = _readme()
    m = next(docs._BLOCK.finditer(text))
    body = m.group("body")
    digits = next(i for i, ch in enumerate(body) if ch.isdigit())
    bumped = body[:digits] + str((int(body[digits]) + 1) % 10) + body[digits + 1:]
    _, changed = docs.rewrite(text.replace(body, bumped, 1))
    assert m.group("name") in changed
