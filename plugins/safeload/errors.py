"""Exceptions of safeload's pure core.

They carry messages written for the person who has to act on them: what was wrong,
where (file, line, column or check) and the fix. The operators translate them into
Airflow's exceptions, choosing between retryable (:class:`AirflowException`) and
not retryable (:class:`AirflowFailException`: bad data, a retry will not help).
"""

from __future__ import annotations


class SafeloadError(Exception):
    """Base class of every safeload error."""

    #: True when retrying the same task could succeed (a lock timeout, a dropped
    #: connection). False for bad input: the data or the contract must change first.
    retryable = False


class ContractError(SafeloadError):
    """A contract file is malformed."""


class SourceError(SafeloadError):
    """A source cannot be read: missing, empty, wrong encoding, ragged rows."""


class SourceUnavailableError(SourceError):
    """A source database could not be reached (refused, timed out, dropped): retry later."""

    retryable = True


class SourceChangedError(SourceUnavailableError):
    """An object in storage changed, was cut short or disappeared while it was read, or
    is not the version that was checked: nothing was loaded from it. Retryable: the next
    try reads the object as it is then (or waits for it again)."""


class SchemaDriftError(SafeloadError):
    """The source broke its contract (breaking drift, or additive drift under ``fail``)."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class LoadRefusedError(SafeloadError):
    """The load was refused before publishing: too many bad rows, empty source, ..."""


class LockTimeoutError(SafeloadError):
    """A lock on the target could not be had within ``lock_timeout``; retry later."""

    retryable = True


class QualityGateError(SafeloadError):
    """At least one critical expectation failed."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result
