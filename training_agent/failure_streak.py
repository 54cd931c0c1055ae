"""How a run of failed tries at one thing is logged: what matters, once.

The poll loop and every retried call (``retry.call_with_retry``: reports, artifact
chunks, claims, dataset downloads) log their failures the same way:

- a failure the next try may well not see (no answer, 408, 429, 5xx, a garbled answer)
  is one WARNING line without a traceback:
  ``poll failed (…), retrying in 2.0s (attempt 1)``;
- once such failures have gone on for ``PERSISTENT_S`` it is an outage, not a blip: one
  ERROR that says for how long, the last failure and what to do; the tries go on, quietly
  (DEBUG);
- a failure no retry mends by itself (a rejected key, a refused request, a TLS
  certificate this machine does not trust: ``retry.is_lasting``) is one ERROR at once,
  said again only when the reason changes;
- after an ERROR, the first success is one INFO line:
  ``poll works again after 95s (7 failed attempts)``.

A blip the next try mends is therefore one WARNING line and nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# Failing for a minute is an outage: the poll loop has then tried about five times
# (2 s doubling), a report about six (1 s doubling); a backend restart or a proxy's
# blip is over well before.
PERSISTENT_S = 60.0


class FailureStreak:
    """The failed tries at one thing since it last worked, and what the log said of them."""

    def __init__(
        self,
        what: str,
        *,
        logger: logging.Logger,
        advice: str = "",
        clock: Callable[[], float] = time.monotonic,
        persistent_s: float = PERSISTENT_S,
    ) -> None:
        """``what`` names the thing tried (``poll``, ``job J logs``); ``advice`` is what
        to do about an outage of it, said in its ERROR line."""
        self._what = what
        self._log = logger
        self._advice = f"; {advice}" if advice else ""
        self._clock = clock
        self._persistent_s = persistent_s
        self._started_at: float | None = None
        self._attempts = 0
        self._said: str | None = None  # the reason of the ERROR standing, if any

    @property
    def failing(self) -> bool:
        """True from a failure until the next success."""
        return self._started_at is not None

    def failed(
        self, exc: BaseException, *, retry_in_s: float, lasting: bool, reason: str | None = None
    ) -> None:
        """Log one more failure as its kind and the streak's length say.

        ``lasting`` says no retry mends it by itself (``retry.is_lasting``); ``reason``
        replaces ``str(exc)`` where the caller has a better sentence.
        """
        now = self._clock()
        if self._started_at is None:
            self._started_at = now
        self._attempts += 1
        reason = reason or str(exc)
        if lasting:
            if reason != self._said:
                self._log.error("%s failed: %s; next try in %.0fs", self._what, reason, retry_in_s)
                self._said = reason
                return
        elif self._said is None and now - self._started_at >= self._persistent_s:
            self._log.error(
                "%s has failed for %.0fs (%d attempts; last: %s)%s; next try in %.0fs",
                self._what,
                now - self._started_at,
                self._attempts,
                reason,
                self._advice,
                retry_in_s,
            )
            self._said = reason
            return
        elif self._said is None:
            self._log.warning(
                "%s failed (%s), retrying in %.1fs (attempt %d)",
                self._what,
                reason,
                retry_in_s,
                self._attempts,
            )
            return
        self._log.debug("%s failed again (%s); next try in %.1fs", self._what, reason, retry_in_s)

    def succeeded(self) -> None:
        """The thing worked: one INFO line if an ERROR said it did not; a new streak."""
        if self._said is not None and self._started_at is not None:
            self._log.info(
                "%s works again after %.0fs (%d failed attempts)",
                self._what,
                self._clock() - self._started_at,
                self._attempts,
            )
        self._started_at, self._attempts, self._said = None, 0, None
