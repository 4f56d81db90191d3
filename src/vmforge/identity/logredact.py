"""Secrets never reach the server log: a ``logging.Filter`` that redacts bearer tokens, JWTs, client secrets,
SAS query strings and storage account keys (``vmforge.events.redact``) from every record — its message and its
traceback — installed on the handlers of the root and uvicorn loggers.

A record's traceback is only formatted by the handler's formatter, after the filters ran (``exc_text`` is still
empty here): so the filter formats it itself, redacts it into ``exc_text`` (which formatters use as is) and drops
``exc_info``, so that no later formatter renders the raw exception again."""

from __future__ import annotations

import logging

from vmforge.events import redact

LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "vmforge")
_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (a bad format string: leave the record to the handler)
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_redaction() -> None:
    """Add the filter to every handler of the loggers that may carry request data (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, RedactingFilter) for f in target.filters):
                target.addFilter(RedactingFilter())
