"""The lab: configuration models, the campaign store (cases, ledger, checkpoints) and the CLI."""
