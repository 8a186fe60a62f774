"""`wallet bench`: load generators for the wallet core and the betflex edge, side by side with pgbench.

The harness (wallet_bench.runner) makes a throwaway PostgreSQL database, seeds it, starts the core and
the edge as separate processes, drives them from a multi-process load generator (wallet_bench.loadgen),
and measures pgbench running exactly the SQL the core issues on the same data (wallet_bench.baseline),
so that every figure comes with a ratio measured in the same run on the same machine.
"""
