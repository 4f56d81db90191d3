"""Secrets never reach the server log: a ``logging.Filter`` that redacts bearer tokens, JWTs, client secrets
and SAS query strings (``vmforge.events.redact``) from every record, installed on the handlers of the
root and uvicorn loggers."""

from __future__ import annotations

import logging

from vmforge.events import redact

LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "vmforge")


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (a bad format string: leave the record to the handler)
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_redaction() -> None:
    """Add the filter to every handler of the loggers that may carry request data (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, RedactingFilter) for f in target.filters):
                target.addFilter(RedactingFilter())
