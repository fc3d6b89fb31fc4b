"""The examples in the decisions modules' docstrings run."""

from __future__ import annotations

import doctest

import pytest

from clue_client.decisions import cache, engine, policy


@pytest.mark.parametrize("module", [engine, policy, cache], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
