"""The examples in the qr module docstrings run and are right."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import clue_client.qr
import clue_client.qr.crc
import clue_client.qr.mpm


@pytest.mark.parametrize("module", [clue_client.qr, clue_client.qr.crc, clue_client.qr.mpm])
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
