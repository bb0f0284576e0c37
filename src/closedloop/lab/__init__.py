"""The lab: the campaign's configuration (one module per TOML table), its store (cases, ledger,
checkpoints, written atomically), its steps (``lab.campaign``) and steering experiments (``lab.steering``).
No Prefect here: tasks/ and flows/ run these steps, cli/ sits on top."""
