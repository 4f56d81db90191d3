"""Runs: dispatch (Celery), claim with a lease, execute the build pipeline."""
