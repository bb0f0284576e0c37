"""Prefect tasks: thin wrappers around lab/ functions adding retries, logging and artifacts."""
