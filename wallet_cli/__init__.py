"""The `wallet` command and the wiring behind it: settings in, a ledger, a gRPC core or an edge out.

    cli.py        the commands (`wallet serve|core|edge|db|reconcile|bench` and the operator's gRPC calls)
    operator.py   the support desk's commands (tx, cancel, settle, ...), registered on the same group
    bootstrap.py  the one place that builds a core or an edge from settings
    errors.py     the exit codes and the one-line errors

It depends on wallet_core, edge_http, clients and wallet_bench; none of them depends on it.
"""
