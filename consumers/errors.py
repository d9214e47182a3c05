"""How a sink or a feed reader reacts to a failure: by the error's attributes, not its message.

    ConsumerError                 retriable = False
     +-- SinkUnavailable          retriable = True, retry_after: the store is down; keep the batch, wait, retry
"""

from __future__ import annotations


class ConsumerError(Exception):
    retriable = False


class SinkUnavailable(ConsumerError):
    retriable = True

    def __init__(self, reason: str, retry_after: float):
        super().__init__(reason)
        self.retry_after = retry_after
