"""Storage adapter: schema, engine set-up, migrations, the unit of work (transactions and their
retries), the SQL of a batch (repository) and the use cases' other SQL (queries). The invariant
checks of `wallet reconcile` keep their own SQL (wallet_core.reconcile)."""
