"""A worker's copy of the Redis values it read, kept exact by Redis' client-side caching
(ADR 0019): the connection that reads them has ``CLIENT TRACKING ON`` (RESP3), so Redis
remembers each key it read and pushes the key's name on that connection as soon as any
client changes, expires or evicts it; the copy drops the key on receipt. The product page
and the stock check then answer a popular SKU's stock without a round trip.

Exactness: a value is stored only if no push for its key arrived since its read was sent
(``begin``/``put``, the same epochs as the page cache): a push can overtake the reply it
concerns in this process, never at Redis. When the tracking connection is lost or made
again, pushes may have been missed: everything is dropped (``reset``) and reads in flight
are not stored. A key this worker dropped is read again by the next caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

DROPPED_MAX = 100_000  # keys remembered as dropped before the whole record starts over


class KeyMirror:
    def __init__(self, max_keys: int, on_invalidated: Callable[[int], None] = lambda n: None):
        self.max_keys = max_keys
        self.on_invalidated = on_invalidated  # told how many keys each push named (a metric)
        self.values: dict[bytes, bytes | None] = {}
        self.epoch = 0  # +1 per push
        self.dropped: dict[bytes, int] = {}  # key -> the epoch of its last push
        self.floor = 0  # reads begun before this epoch are never stored

    def get(self, keys: Sequence[bytes]) -> list[bytes | None] | None:
        """The copies of all ``keys``, or None when one is missing."""
        values = self.values
        try:
            return [values[k] for k in keys]
        except KeyError:
            return None

    def begin(self) -> int:
        """Call before sending the read whose values ``put`` will store."""
        return self.epoch

    def put(self, keys: Sequence[bytes], values: Sequence[bytes | None], began: int) -> None:
        if began < self.floor:
            return
        if len(self.values) + len(keys) > self.max_keys:
            self.values.clear()  # rare: the popular keys come back on their next read
        dropped = self.dropped
        for key, value in zip(keys, values, strict=True):
            if dropped.get(key, -1) <= began:
                self.values[key] = value

    def invalidate(self, keys: Sequence[bytes] | None) -> None:
        """Redis pushed these keys (None: every key, e.g. after FLUSHALL)."""
        if keys is None:
            self.reset()
            return
        self.epoch += 1
        self.on_invalidated(len(keys))
        for key in keys:
            self.values.pop(key, None)
            self.dropped[key] = self.epoch
        if len(self.dropped) > DROPPED_MAX:
            self.dropped.clear()
            self.floor = self.epoch + 1  # a read begun before now is refused instead
            self.epoch += 1

    def reset(self) -> None:
        """The tracking connection was lost or made: nothing copied can be trusted."""
        self.values.clear()
        self.dropped.clear()
        self.epoch += 1
        self.floor = self.epoch
