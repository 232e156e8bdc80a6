"""SharedStore: the server-wide LRU map behind kept predictions, zips and activation indices."""

from __future__ import annotations

from app.shared_store import SharedStore


def test_keeps_the_most_recently_used_entries():
    store = SharedStore(2)
    store.put("a", 1)
    store.put("b", 2)
    assert store.get("a") == 1  # "a" is now the most recent
    store.put("c", 3)  # evicts "b", the least recently used
    assert (store.get("a"), store.get("b"), store.get("c")) == (1, None, 3)
    assert store.put("a", 10) == 10 and store.get("a") == 10
