"""Use cases (templates, runs, triggers, operations). Domain errors only; no HTTP here."""
