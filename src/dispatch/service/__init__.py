"""The gRPC dispatch service: ``dispatch serve``.

Modules: ``config`` (TOML + flags), ``validate`` (proto -> model checks naming the field), ``journal`` (SQLite WAL
with group commit), ``store`` (the authoritative in-memory state), ``loop`` (the dispatch loop on the wall clock),
``auth`` (bearer tokens with roles), ``servicer`` (proto <-> store), ``metrics`` (Prometheus), ``server``
(bootstrap: ``create_server(config) -> RunningServer``) and ``cli`` (``dispatch serve``).
"""
