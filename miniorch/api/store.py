"""The object store: SQLite for durability, memory for reads, fan-out for watches.

Data flow:

    registry ──create/update/delete──► Store ──► SQLite (WAL, one row per object)
                                          │
                                          ├──► in-memory index (serialised JSON per key)
                                          └──► history ring ──► every matching Watch

Invariants:
- One global resourceVersion counter, bumped by every write (Kubernetes' etcd
  revision). It is persisted, so a restarted cluster continues where it stopped and
  clients' resourceVersions stay monotonic.
- All methods but `Watch` iteration are synchronous and run on the event loop thread:
  a read-modify-write between two awaits is atomic (`mutate`), no locks needed.
- Readers get fresh dicts (parsed from the stored JSON), never the store's own state,
  so no caller can corrupt it by mutating a result.
- A watch resumes from any resourceVersion still in the history ring; an older one
  gets `Gone` (410 Expired), and the client re-lists. A watcher too slow to drain its
  bounded mailbox is closed with `Gone` too, instead of holding memory without bound.
"""

from __future__ import annotations

import builtins
import collections
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from miniorch.api.errors import AlreadyExists, Conflict, Gone, NotFound
from miniorch.api.resource import Resource
from miniorch.api.selectors import FieldSelector, LabelSelector
from miniorch.core.clock import Clock, SystemClock, rfc3339
from miniorch.core.objects import Obj
from miniorch.core.readonly import freeze

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
StoreKey = tuple[str, str, str]
"""(resource key, namespace, name); namespace is "" for cluster-scoped kinds."""

WATCH_MAILBOX = 4096


class _Change:
    """One entry of the history ring: a write, as JSON text, at its resourceVersion.

    While it is its object's latest version it also holds (once asked for) the one
    read-only parsed copy that `list(shared=True)` and every informer share; the next
    write of the object drops it, so the ring keeps text only."""

    __slots__ = ("_frozen", "current", "namespace", "raw", "resource_key", "rv", "type")

    def __init__(self, rv: int, type: EventType, resource_key: str, namespace: str,
                 raw: str) -> None:
        self.rv, self.type, self.resource_key = rv, type, resource_key
        self.namespace, self.raw = namespace, raw
        self._frozen: Obj | None = None
        self.current = type != "DELETED"

    def frozen(self) -> Obj:
        if self._frozen is not None:
            return self._frozen
        obj = freeze(json.loads(self.raw))
        if self.current:
            # Cached only while this is the object's latest version: a watcher that
            # lags behind a burst must not park a parsed copy in the history ring.
            self._frozen = obj
        return obj

    def superseded(self) -> None:
        self.current = False
        self._frozen = None


@dataclass
class WatchEvent:
    """One watch event. `raw` is the object's JSON; `object` parses it for this reader;
    `frozen` is the read-only copy shared with the store's other readers."""

    type: EventType
    raw: str
    rv: int
    stored: float = 0.0
    """perf_counter() when the write fanned it out (0: a replay from the cache or the
    history), so a watcher can report the fan-out delay."""
    change: _Change | None = field(default=None, repr=False, compare=False)

    @cached_property
    def object(self) -> Obj:
        parsed: Obj = json.loads(self.raw)
        return parsed

    @property
    def frozen(self) -> Obj:
        return self.change.frozen() if self.change is not None else freeze(self.object)


@dataclass
class _Watcher:
    resource_key: str
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    send: MemoryObjectSendStream[WatchEvent]
    overflowed: bool = False

    def wants(self, change: _Change) -> bool:
        if change.resource_key != self.resource_key:
            return False
        if self.namespace and change.namespace != self.namespace:
            return False
        if self.labels.empty and self.fields.empty:
            return True
        obj = json.loads(change.raw)
        return self.labels.matches_object(obj) and self.fields.matches_object(obj)


@dataclass
class Watch:
    """An open watch: iterate it for events; `aclose()` (or `async with`) to stop.

    Iteration ends with `Gone` if this watcher fell too far behind.
    """

    _receive: MemoryObjectReceiveStream[WatchEvent]
    _watcher: _Watcher
    _store: Store = field(repr=False)
    _taken: int = field(default=0, repr=False)
    BURST: ClassVar[int] = 64

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        # Events already queued are taken without a trip through the event loop (anyio's
        # receive() always yields first): under load a watcher that takes one event per
        # loop turn falls seconds behind the store. Every BURST events it yields anyway,
        # so one busy watcher cannot starve the others.
        try:
            if self._taken < self.BURST:
                try:
                    event = self._receive.receive_nowait()
                except anyio.WouldBlock:
                    pass
                else:
                    self._taken += 1
                    return event
            self._taken = 0
            return await self._receive.receive()
        except anyio.EndOfStream:
            if self._watcher.overflowed:
                raise Gone("watch fell behind; re-list and watch again") from None
            raise StopAsyncIteration from None

    async def next_batch(self, limit: int = 256) -> list[WatchEvent]:
        """The next event and every one queued behind it (up to `limit`), for writers
        that can send many in one go. Raises like `__anext__` at the end."""
        batch = [await self.__anext__()]
        while len(batch) < limit:
            try:
                batch.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        return batch

    async def aclose(self) -> None:
        self._store._remove_watcher(self._watcher)
        self._receive.close()

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Store:
    """Objects by (resource, namespace, name), persisted in SQLite, watched in memory."""

    def __init__(self, path: Path | None, *, clock: Clock | None = None,
                 history: int = 10_000) -> None:
        """`path=None` keeps everything in memory (for tests of layers above)."""
        self._clock = clock or SystemClock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: durable across a crash of the process (our kill -9 case);
        # only a power loss could lose the last commits.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (resource TEXT NOT NULL, namespace TEXT NOT NULL,"
            " name TEXT NOT NULL, rv INTEGER NOT NULL, body TEXT NOT NULL,"
            " PRIMARY KEY (resource, namespace, name))")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        self._objects: dict[StoreKey, str] = {}
        # The keys of each resource, so a list reads only its own kind: scanning every
        # key of the store made each controller's list of ReplicaSets, per pod event,
        # cost O(all objects) — quadratic in a burst of 10,000 pods.
        self._keys: dict[str, set[StoreKey]] = collections.defaultdict(set)
        # Each object's latest write, holding the read-only parsed copy that
        # `list(shared=True)` and the informers share (one parsed copy per object: at
        # 10,000 pods a second one cost ~100 MB).
        self._latest: dict[StoreKey, _Change] = {}
        for resource, namespace, name, body in self._db.execute(
                "SELECT resource, namespace, name, body FROM objects"):
            self._objects[(resource, namespace, name)] = body
            self._keys[resource].add((resource, namespace, name))
        row = self._db.execute("SELECT v FROM meta WHERE k='rv'").fetchone()
        self._rv = int(row[0]) if row else 0
        self._history: collections.deque[_Change] = collections.deque(maxlen=history)
        self._watchers: list[_Watcher] = []

    def close(self) -> None:
        for watcher in list(self._watchers):
            watcher.send.close()
        self._watchers.clear()
        self._db.close()

    # ---- reads -------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        raw = self._objects.get((resource.key, self._ns(resource, namespace), name))
        if raw is None:
            raise NotFound.of(resource.plural, name, resource.group)
        obj: Obj = json.loads(raw)
        return obj

    def try_get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        raw = self._objects.get((resource.key, self._ns(resource, namespace), name))
        if raw is None:
            return None
        obj: Obj = json.loads(raw)
        return obj

    def list(self, resource: Resource, namespace: str | None = None, *,
             labels: LabelSelector | None = None,
             fields: FieldSelector | None = None,
             shared: bool = False) -> tuple[list[Obj], int]:
        """Matching objects sorted by (namespace, name), and the list's resourceVersion.

        `shared=True` returns the store's cached parsed objects instead of fresh copies:
        for read-only callers (reconcilers listing every pod on every pod event), which
        then parse each object once per change instead of once per list. They are
        read-only (`core.readonly`), the very objects the informers hand out.
        """
        items = []
        for obj in self._iter(resource, namespace, shared=shared):
            if labels and not labels.matches_object(obj):
                continue
            if fields and not fields.matches_object(obj):
                continue
            items.append(obj)
        return items, self._rv

    def list_raw(self, resource: Resource, namespace: str | None = None, *,
                 labels: LabelSelector | None = None,
                 fields: FieldSelector | None = None) -> tuple[builtins.list[str], int]:
        """`list`, as the stored JSON texts: what a LIST answers, without parsing and
        serialising every object again (at 10,000 pods that was 2-3 s per LIST)."""
        select = bool(labels and not labels.empty) or bool(fields and not fields.empty)
        items = []
        for store_key in self._sorted_keys(resource, namespace):
            if select:
                obj = self._shared(store_key)
                if labels and not labels.matches_object(obj):
                    continue
                if fields and not fields.matches_object(obj):
                    continue
            items.append(self._objects[store_key])
        return items, self._rv

    def _sorted_keys(self, resource: Resource, namespace: str | None
                     ) -> builtins.list[StoreKey]:
        ns = self._ns(resource, namespace) if namespace else None
        keys = self._keys.get(resource.key, ())
        return sorted(keys if ns is None else (k for k in keys if k[1] == ns))

    def _shared(self, store_key: StoreKey) -> Obj:
        latest = self._latest.get(store_key)
        if latest is None:  # restored from disk, never written since
            latest = self._latest[store_key] = _Change(
                0, "ADDED", store_key[0], store_key[1], self._objects[store_key])
        return latest.frozen()

    def _iter(self, resource: Resource, namespace: str | None, *,
              shared: bool = False) -> Iterator[Obj]:
        for store_key in self._sorted_keys(resource, namespace):
            yield self._shared(store_key) if shared else json.loads(self._objects[store_key])

    # ---- writes ------------------------------------------------------------------

    def create(self, resource: Resource, obj: Obj) -> Obj:
        """Insert a new object; fills uid, creationTimestamp, resourceVersion."""
        meta = obj.setdefault("metadata", {})
        namespace = self._ns(resource, meta.get("namespace"))
        name = meta["name"]
        key = (resource.key, namespace, name)
        if key in self._objects:
            raise AlreadyExists.of(resource.plural, name, resource.group)
        if resource.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", rfc3339(self._clock.now()))
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        return self._write(resource, key, obj, "ADDED")

    def update(self, resource: Resource, obj: Obj, *, check_rv: bool = True) -> Obj:
        """Replace an existing object. With `check_rv` and a resourceVersion in `obj`,
        a stale one is a `Conflict` (optimistic concurrency); identity fields
        (uid, creationTimestamp) always come from the stored object."""
        meta = obj.setdefault("metadata", {})
        namespace = self._ns(resource, meta.get("namespace"))
        name = meta["name"]
        key = (resource.key, namespace, name)
        raw = self._objects.get(key)
        if raw is None:
            raise NotFound.of(resource.plural, name, resource.group)
        current = json.loads(raw)
        cur_meta = current["metadata"]
        sent_rv = meta.get("resourceVersion")
        if check_rv and sent_rv and str(sent_rv) != cur_meta.get("resourceVersion"):
            raise Conflict.stale(resource.plural, name, resource.group)
        if meta.get("uid") and meta["uid"] != cur_meta.get("uid"):
            raise Conflict(f"Precondition failed: UID in precondition: {meta['uid']}, "
                           f"UID in object meta: {cur_meta.get('uid')}",
                           kind=resource.plural, name=name)
        for fixed in ("uid", "creationTimestamp"):
            if fixed in cur_meta:
                meta[fixed] = cur_meta[fixed]
        if resource.namespaced:
            meta["namespace"] = namespace
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        # A write that changes nothing is not a write: no new resourceVersion, no event
        # (kube-apiserver behaves the same, and it keeps idle controllers quiet).
        meta["resourceVersion"] = cur_meta.get("resourceVersion")
        if json.dumps(obj, sort_keys=True) == json.dumps(current, sort_keys=True):
            return current  # type: ignore[no-any-return]
        return self._write(resource, key, obj, "MODIFIED")

    def mutate(self, resource: Resource, namespace: str, name: str,
               change: Callable[[Obj], Obj | None]) -> Obj:
        """Atomic read-modify-write: `change` edits the object in place (or returns a
        replacement). Safe without retries because the store is single-threaded."""
        obj = self.get(resource, namespace, name)
        replaced = change(obj)
        return self.update(resource, replaced if replaced is not None else obj, check_rv=False)

    def delete(self, resource: Resource, namespace: str, name: str, *,
               uid: str | None = None, resource_version: str | None = None) -> Obj:
        """Remove an object for good (graceful deletion is the registry's business)."""
        key = (resource.key, self._ns(resource, namespace), name)
        raw = self._objects.get(key)
        if raw is None:
            raise NotFound.of(resource.plural, name, resource.group)
        obj: Obj = json.loads(raw)
        meta = obj["metadata"]
        if uid and uid != meta.get("uid"):
            raise Conflict(f"Precondition failed: UID in precondition: {uid}, "
                           f"UID in object meta: {meta.get('uid')}",
                           kind=resource.plural, name=name)
        if resource_version and resource_version != meta.get("resourceVersion"):
            raise Conflict.stale(resource.plural, name, resource.group)
        return self._write(resource, key, obj, "DELETED")

    def _write(self, resource: Resource, key: StoreKey, obj: Obj, kind: EventType) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        raw = json.dumps(obj, separators=(",", ":"))
        db = self._db
        db.execute("BEGIN")
        try:
            if kind == "DELETED":
                db.execute("DELETE FROM objects WHERE resource=? AND namespace=? AND name=?", key)
            else:
                db.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?)",
                           (*key, self._rv, raw))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (str(self._rv),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._rv -= 1
            raise
        change = _Change(self._rv, kind, resource.key, key[1], raw)
        previous = self._latest.pop(key, None)
        if previous is not None:
            previous.superseded()
        if kind == "DELETED":
            del self._objects[key]
            self._keys[key[0]].discard(key)
        else:
            self._objects[key] = raw
            self._keys[key[0]].add(key)
            self._latest[key] = change
        self._history.append(change)
        self._fan_out(change)
        return obj

    # ---- watch -------------------------------------------------------------------

    def watch(self, resource: Resource, namespace: str | None = None, *,
              since: int | None = None, labels: LabelSelector | None = None,
              fields: FieldSelector | None = None) -> Watch:
        """Watch changes after resourceVersion `since`.

        `since=None` (or 0) starts with an ADDED event for every matching object, as
        Kubernetes does for a watch without a resourceVersion.
        """
        send, receive = anyio.create_memory_object_stream[WatchEvent](WATCH_MAILBOX)
        ns = self._ns(resource, namespace) if namespace else None
        watcher = _Watcher(resource.key, ns, labels or LabelSelector(),
                           fields or FieldSelector(), send)
        if not since:
            items, _rv = self.list(resource, namespace, labels=labels, fields=fields)
            for obj in items:
                self._offer(watcher, WatchEvent("ADDED", json.dumps(obj, separators=(",", ":")),
                                                int(obj["metadata"]["resourceVersion"])))
        elif since < self._rv:
            oldest = self._history[0].rv if self._history else self._rv + 1
            if since < oldest - 1:
                send.close()
                receive.close()
                raise Gone(f"too old resource version: {since} ({oldest - 1})")
            for change in self._history:
                if change.rv > since and watcher.wants(change):
                    self._offer(watcher, WatchEvent(change.type, change.raw, change.rv,
                                                    change=change))
        self._watchers.append(watcher)
        return Watch(receive, watcher, self)

    def _fan_out(self, change: _Change) -> None:
        stored = time.perf_counter()
        for watcher in list(self._watchers):
            if watcher.wants(change):
                self._offer(watcher, WatchEvent(change.type, change.raw, change.rv, stored,
                                                change=change))

    def _offer(self, watcher: _Watcher, event: WatchEvent) -> None:
        try:
            watcher.send.send_nowait(event)
        except anyio.WouldBlock:
            watcher.overflowed = True
            watcher.send.close()
            self._remove_watcher(watcher)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._remove_watcher(watcher)

    def _remove_watcher(self, watcher: _Watcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)
            watcher.send.close()

    @staticmethod
    def _ns(resource: Resource, namespace: str | None) -> str:
        if not resource.namespaced:
            return ""
        return namespace or "default"
