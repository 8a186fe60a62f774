"""`python -m wallet_cli ...`: the `wallet` command without its console script."""

from wallet_cli.cli import main

main()
