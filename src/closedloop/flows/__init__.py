"""Prefect flows composing the lab's tasks."""
