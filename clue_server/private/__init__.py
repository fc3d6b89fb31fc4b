"""Private look-ups, protocol version 2 (docs/private-lookups.md): the server's side.

The register keeps, per identifier, one *entry*: an id and an answer sealed under a key
that only someone who evaluated the identifier's OPRF (or the server) can derive. The
pure functions both sides share live in ``clue_client.private_lookups`` and ``keys``;
here are the storage (``store``: entries follow the reports behind them), the v2
endpoints (``views``) and the council's commands (``cli``).
"""
