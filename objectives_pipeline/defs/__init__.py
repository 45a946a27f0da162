"""Dagster wiring: resources, assets, checks, jobs, schedules and sensors."""
