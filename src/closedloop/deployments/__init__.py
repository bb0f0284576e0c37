"""Deployments of the flows: served with schedules (``closedloop serve``) or from prefect.yaml."""
