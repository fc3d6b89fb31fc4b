"""The SDK's surface as a type checker sees it (issue 12): ``from_config`` takes the
constructor's real keyword arguments, and methods return the typed models."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SNIPPET = '''
from clue_client import AsyncClueClient, ClueClient

ok = ClueClient.from_config("x.json", timeout=1.5, retries=0, strict=True, session=None)
misspelt = ClueClient.from_config("x.json", timout=1.5)
wrong_type = ClueClient.from_config("x.json", timeout="fast")
fine = AsyncClueClient.from_config("x.json", http_client=None, fallback="block")
sync_only = AsyncClueClient.from_config("x.json", session=None)
reveal_type(ok.incoming_disputes())
reveal_type(ok.open_dispute("phone", "090-1234-5678", "reason"))
'''


def test_from_config_is_typed_and_methods_return_models(tmp_path: Path) -> None:
    use = tmp_path / "use.py"
    use.write_text(SNIPPET, encoding="utf-8")
    out, _, _ = api.run(["--strict", "--no-error-summary", "--cache-dir",
                         str(tmp_path / "cache"), str(use)])
    by_line: dict[int, str] = {}
    for line in out.splitlines():
        if line.startswith(str(use)):
            number, text = line[len(str(use)) + 1:].split(":", 1)
            by_line[int(number)] = by_line.get(int(number), "") + text.strip() + "\n"
    assert by_line[5].startswith('error: Unexpected keyword argument "timout"'), out
    assert 'incompatible type "str"; expected "float"' in by_line[6], out
    assert by_line[8].startswith('error: Unexpected keyword argument "session"'), out
    assert "list[clue_client.models.IncomingDispute]" in by_line[9], out
    assert "clue_client.models.FiledDispute" in by_line[10], out
    assert 4 not in by_line and 7 not in by_line, out  # the correct calls pass
