"""Stable keyset paging over records that keep changing.

Every write gives the record a new, globally increasing sequence number and appends it to the index; the
old entry goes stale. A page is "the next `limit` live entries after position p", found with bisect, so
paging costs O(limit) rather than O(n), and a record changed mid-way through a listing moves behind the
reader instead of shifting others: pages never overlap or skip (a changed record is seen again, newer).

Entries are appended in non-decreasing `updated_at` order (the sandbox clock never goes back), which makes
`updated_since` a bisect as well.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from typing import Any


class SeqIndex:
    """Live records of one kind, ordered by their last write."""

    def __init__(self) -> None:
        self._seqs: list[int] = []
        self._stamps: list[str] = []
        self._ids: list[str] = []
        self._current: dict[str, int] = {}
        self.records: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, record_id: str) -> bool:
        return record_id in self.records

    def get(self, record_id: str) -> Any | None:
        return self.records.get(record_id)

    def put(self, record_id: str, record: Any, seq: int, updated_at: str) -> None:
        """Store a new version of `record_id` at position `seq` (must exceed every earlier seq)."""
        if self._seqs and (seq <= self._seqs[-1] or updated_at < self._stamps[-1]):
            raise ValueError("index writes must be in sequence and time order")
        self._seqs.append(seq)
        self._stamps.append(updated_at)
        self._ids.append(record_id)
        self._current[record_id] = seq
        self.records[record_id] = record

    def replace_in_place(self, record_id: str, record: Any) -> None:
        """Swap the stored version without moving it (used only while seeding)."""
        self.records[record_id] = record

    def remove(self, record_id: str) -> None:
        self._current.pop(record_id, None)
        self.records.pop(record_id, None)

    def start_position(self, after_seq: int, since: str | None) -> int:
        """Index of the first entry after `after_seq` whose updated_at >= `since`."""
        pos = bisect_right(self._seqs, after_seq)
        if since is not None:
            pos = max(pos, bisect_left(self._stamps, since))
        return pos

    def live_from(self, pos: int) -> Iterator[tuple[int, Any]]:
        """(seq, record) for every live entry from list position `pos` on."""
        seqs, ids, current = self._seqs, self._ids, self._current
        for i in range(pos, len(seqs)):
            record_id = ids[i]
            seq = seqs[i]
            if current.get(record_id) == seq:
                yield seq, self.records[record_id]

    def page(
        self,
        after_seq: int,
        limit: int,
        since: str | None = None,
        keep: Callable[[Any], bool] | None = None,
    ) -> tuple[list[Any], int | None, bool]:
        """Up to `limit` live records after `after_seq`; returns (records, seq of the last one, has_more)."""
        records: list[Any] = []
        last_seq: int | None = None
        for seq, record in self.live_from(self.start_position(after_seq, since)):
            if keep is not None and not keep(record):
                continue
            if len(records) == limit:
                return records, last_seq, True
            records.append(record)
            last_seq = seq
        return records, last_seq, False

    def values(self) -> Iterator[Any]:
        """Live records in index order."""
        for _, record in self.live_from(0):
            yield record
