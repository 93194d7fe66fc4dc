"""The worker's read side: facts with their documents, histories, and answers "as of" a date.

Each worker answers for the partitions it owns, like /v1/signals. The pure
core decides what to list (``tracker.core.facts``, ``history``, ``knowledge``,
``overview``); this module reads the tables, fetches the documents of a page
from the events topic (``LogReader``) and evaluates the alert rules on a past
state. A read costs what it asks for: a query naming a subject reads its fold
group, any other reads (decodes) only the keys the core says may answer it,
listed by the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

from tracker.core.alerts import Alert, evaluate
from tracker.core.catalogue import Signal
from tracker.core.decode import decode_event
from tracker.core.facts import (
    FactEntry,
    fact_document,
    fact_subjects,
    find_fact,
    iter_candidates,
    key_may_hold,
    matches_document,
    state_document,
)
from tracker.core.fold import SeriesValue
from tracker.core.fx import rates_keys
from tracker.core.history import history_subject, key_may_feed, signal_history
from tracker.core.knowledge import entry_offset, known_state
from tracker.core.overview import (
    ALERT_SUBJECT_LABELS,
    alert_counts,
    alert_is_about,
    entities_page,
    entity_summary,
    key_subject,
    rank_alerts,
)
from tracker.core.queries import (
    AlertQuery,
    FactQuery,
    OverviewQuery,
    SignalQuery,
    encode_cursor,
    encode_entity_cursor,
)
from tracker.core.signals import derive_signals
from tracker.errors import EventValidationError
from tracker.kafka.partitioning import partition_for
from tracker.worker.alert_digest import AlertDigest
from tracker.worker.metrics import owned_state

if TYPE_CHECKING:
    from tracker.worker.state import WorkerState

__all__ = ["Reads", "RecordLog"]

#: The labels naming a signal's subject: /v1/signals naming one derives only its fold group.
_SUBJECT_LABELS = ("entity", "buyer", "authority", "peer")


class RecordLog(Protocol):
    """Where the documents of facts are read back by position: the events topic (``LogReader``)."""

    async def read(self, positions: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Return the value of each record found at the given (partition, offset) positions."""
        ...


class Reads:
    """Answer the read endpoints from one worker's tables and the events topic."""

    def __init__(self, state: WorkerState, log: RecordLog) -> None:
        self.state = state
        self.log = log
        self.topic = state.settings.events_topic
        self.partitions = state.settings.partitions
        self.digest = AlertDigest(
            lambda: owned_state(state.groups, state.owned_partitions(), self.partitions),
            # The fold's counters move when a batch is written (its alerts with it), the partitions on a rebalance.
            lambda: (tuple(sorted(state.progress().items())), frozenset(state.owned_partitions())),
        )

    def _owned(self) -> dict[str, SeriesValue]:
        return owned_state(self.state.table, self.state.owned_partitions(), self.partitions)

    def _subject_state(self, subjects: frozenset[str]) -> dict[str, SeriesValue]:
        """Return the fold groups of ``subjects`` that this worker owns."""
        owned = self.state.owned_partitions()
        state: dict[str, SeriesValue] = {}
        for fold_key in sorted({self.state.router.fold_key(subject) for subject in subjects}):
            if partition_for(fold_key, self.partitions) in owned:
                state.update(self.state.group_state(fold_key))
        return state

    def _keys(self, wanted: Callable[[str], bool]) -> dict[str, SeriesValue]:
        """Return the owned series and rates keys ``wanted`` accepts, decoding only their values."""
        table = self.state.table
        state = {}
        for partition in sorted(self.state.owned_partitions()):
            for key in self.state.index.keys(partition):
                if wanted(key) and (value := table.get(key)) is not None:
                    state[key] = value
        return state

    def signals(self, query: SignalQuery) -> list[Signal]:
        """Return the signals of the owned partitions as known on ``query.as_of``, filtered by ``query``."""
        # Every signal about an entity, a buyer, an authority or a peer is derived in its fold group.
        subject = next((query.labels[name] for name in _SUBJECT_LABELS if name in query.labels), None)
        signals = self.state.signals(subject, query.as_of)
        return [signal for signal in signals if _matches(signal, query)]

    def history(self, query: SignalQuery) -> dict[str, Any]:
        """Return /v1/signals/history's document."""
        subject = history_subject(query)
        if subject is not None:
            state = self._subject_state(frozenset({subject}))
        else:
            state = self._keys(lambda key: key_may_feed(key, query))
        state = known_state(state, query.as_of)
        return {"series": [item.to_json() for item in signal_history(self.state.router, state, query)]}

    async def facts(self, query: FactQuery) -> dict[str, Any]:
        """Return a page of /v1/facts, documents read from the log."""
        subjects = fact_subjects(query)
        state = self._subject_state(subjects) if subjects is not None else self._keys(lambda k: key_may_hold(k, query))
        found = iter_candidates(state, query)
        page: list[dict[str, Any]] = []
        more = False
        while len(page) < query.limit and not more:
            chunk = list(islice(found, query.limit - len(page)))
            if not chunk:
                break
            documents = await self._documents(chunk)
            for taken, entry in enumerate(chunk, 1):
                document = documents.get(entry.event_id)
                if matches_document(_or_state(entry, document), query):
                    page.append(self._fact(entry, document))
                    if len(page) == query.limit:
                        more = taken < len(chunk) or next(found, None) is not None
                        break
        last = page[-1] if page else None
        return {
            "facts": page,
            "next_cursor": encode_cursor(last["occurred_on"], last["id"]) if more and last else None,
        }

    async def fact(self, event_id: str, as_of: str | None) -> dict[str, Any] | None:
        """Return /v1/facts/{id}'s document, or None when no owned partition holds the fact."""
        located = self._locate(event_id)
        if located is None:
            return None
        key, group = located
        group = known_state(group, as_of)
        entry = find_fact({key: group[key]}, event_id)
        if entry is None:
            return None  # not known yet on as_of
        documents = await self._documents([entry])
        return {
            "fact": self._fact(entry, documents.get(event_id)),
            "signals": [_signal_json(s) for s in self._fed(group, key, entry)],
            "alerts": self._alerts_of(group, key, entry),
        }

    def overview(self, query: OverviewQuery) -> dict[str, Any]:
        """Return /v1/overview's document: a page of entities with their latest figures, the most severe alerts."""
        subjects: set[str] = set()
        for partition in sorted(self.state.owned_partitions()):
            subjects.update(filter(None, map(key_subject, self.state.index.keys(partition))))
        slugs, total, rest = entities_page(subjects, query.q, query.after, query.limit)
        if query.as_of is None:
            digest = self.digest.get()
            ranked, counts, count = digest.ranked[: query.alerts], digest.counts, digest.total
        else:
            alerts = self.alerts(AlertQuery(as_of=query.as_of))
            ranked, counts, count = rank_alerts(alerts, query.alerts), alert_counts(alerts), len(alerts)
        entities = [
            {
                "entity": slug,
                "signals": entity_summary(self.state.signals(slug, query.as_of), slug),
                "alerts": counts.get(slug, 0),
            }
            for slug in slugs
        ]
        return {
            "entities": entities,
            "entities_total": total,
            "next_cursor": encode_entity_cursor(slugs[-1]) if rest else None,
            "alerts": ranked,
            "alerts_total": count,
        }

    def alerts(self, query: AlertQuery) -> list[dict[str, Any]]:
        """Return the active alerts, now (with their stored provenance) or as evaluated on ``query.as_of``."""
        if query.as_of is None and query.entity is not None:
            # Only the groups-table keys that hold the entity's alerts, read afresh.
            groups = self.state.groups
            entries = [
                entry
                for key in self.digest.get().where.get(query.entity, [])
                for entry in (groups.get(key) or {"alerts": {}})["alerts"].values()
            ]
            alerts = [{**entry["alert"], "provenance": entry["provenance"]} for entry in entries]
            alerts.sort(key=lambda alert: (alert["rule"], alert["fingerprint"]))
        elif query.as_of is None:
            entries = self.state.alerts()
            alerts = [{**entry["alert"], "provenance": entry["provenance"]} for entry in entries]
        else:
            alerts = []
            for partition in sorted(self.state.owned_partitions()):
                fold_keys = self.state.index.fold_keys(partition)
                if query.entity is not None:  # the alerts about an entity are evaluated in its fold group
                    fold_keys = [key for key in fold_keys if key == self.state.router.fold_key(query.entity)]
                for fold_key in sorted(fold_keys):
                    group = known_state(self.state.group_state(fold_key), query.as_of)
                    for alert in evaluate(self.state.rules, self.state.router, group).values():
                        alerts.append({**alert.to_json(), "provenance": self._provenance(group, alert)})
            alerts.sort(key=lambda alert: (alert["rule"], alert["fingerprint"]))
        return [
            alert
            for alert in alerts
            if (query.state is None or alert["state"] == query.state)
            and (query.entity is None or alert_is_about(alert, query.entity))
        ]

    # --- helpers -----------------------------------------------------------------------------------------

    def _locate(self, event_id: str) -> tuple[str, dict[str, SeriesValue]] | None:
        """Return the key holding a fact on an owned partition and the state its signals read."""
        index = self.state.index
        table = self.state.table
        for partition in sorted(self.state.owned_partitions()):
            for key in index.locate(partition, event_id):
                value = table.get(key)
                if value is not None and event_id in value["facts"]:
                    return key, self.state.group_state(key.partition("/")[0])
            for key in rates_keys(partition):
                value = table.get(key)
                if value is not None and event_id in value["facts"]:
                    return key, self._owned()  # a rate converts money in every group
        return None

    async def _documents(self, entries: list[FactEntry]) -> dict[str, dict[str, Any]]:
        wanted = {(partition_for(e.key, self.partitions), e.offset): e for e in entries if isinstance(e.offset, int)}
        records = await self.log.read(list(wanted))
        documents: dict[str, dict[str, Any]] = {}
        for position, value in records.items():
            try:
                event = decode_event(value)
            except EventValidationError:
                continue
            entry = wanted[position]
            if event.event_id == entry.event_id:  # the record the fold kept, not another one
                documents[entry.event_id] = {**event.model_dump(mode="json"), "id": entry.event_id}
        return documents

    def _fact(self, entry: FactEntry, document: dict[str, Any] | None) -> dict[str, Any]:
        return fact_document(entry, document, self.topic, partition_for(entry.key, self.partitions))

    def _fed(self, group: dict[str, SeriesValue], key: str, entry: FactEntry) -> list[Signal]:
        """Return the signals the fact feeds: those that change when it is taken away."""
        if entry.retracted_by is not None:
            return []
        router = self.state.router
        without = set(derive_signals(router, _without(group, key, entry.event_id)))
        return [signal for signal in derive_signals(router, group) if signal not in without]

    def _alerts_of(self, group: dict[str, SeriesValue], key: str, entry: FactEntry) -> list[dict[str, Any]]:
        """Return the alerts the fact (were it live) causes, and those it ends, with their state now."""
        rules, router = self.state.rules, self.state.router
        retracted = {i: r for i, r in group[key]["retracted"].items() if i != entry.event_id}
        live = {**group, key: {**group[key], "retracted": retracted}}
        with_it = evaluate(rules, router, live)
        without = evaluate(rules, router, _without(group, key, entry.event_id))
        active = self._active({**with_it, **without}.values())
        out = []
        for relation, alerts, others in (("caused", with_it, without), ("resolved", without, with_it)):
            for fingerprint, alert in sorted(alerts.items()):
                if relation == "caused" and entry.event_id not in alert.cause_ids and fingerprint in others:
                    continue
                if relation == "resolved" and fingerprint in others:
                    continue
                now = active.get(fingerprint)
                document = {**alert.to_json(), "relation": relation}
                document["state"] = now["alert"]["state"] if now is not None else "resolved"
                document["provenance"] = now["provenance"] if now is not None else self._provenance(live, alert)
                out.append(document)
        return out

    def _active(self, alerts: Iterable[Alert]) -> dict[str, dict[str, Any]]:
        """Return the stored active alerts among those about the same entities as ``alerts``, by fingerprint."""
        slugs: set[str] = set()
        everything = False
        for alert in alerts:
            labels = dict(alert.labels)
            named = {labels[name] for name in ALERT_SUBJECT_LABELS if name in labels}
            everything = everything or not named  # an alert about no entity: read them all
            slugs |= named
        if everything:
            found = [{**e["alert"], "provenance": e["provenance"]} for e in self.state.alerts()]
        else:
            found = [a for slug in sorted(slugs) for a in self.alerts(AlertQuery(entity=slug))]
        return {alert["fingerprint"]: {"alert": alert, "provenance": alert["provenance"]} for alert in found}

    def _provenance(self, group: Mapping[str, SeriesValue], alert: Alert) -> list[dict[str, Any]]:
        out = []
        for cause in alert.cause_ids:
            for key, value in group.items():
                if cause in value["facts"]:
                    offset = entry_offset(value.get("known", {}).get(cause))
                    if offset is not None:
                        partition = partition_for(key, self.partitions)
                        out.append({"id": cause, "topic": self.topic, "partition": partition, "offset": offset})
                    break
        return out


def _without(group: dict[str, SeriesValue], key: str, event_id: str) -> dict[str, SeriesValue]:
    value = group[key]
    return {**group, key: {**value, "facts": {i: p for i, p in value["facts"].items() if i != event_id}}}


def _or_state(entry: FactEntry, document: dict[str, Any] | None) -> dict[str, Any]:
    return document if document is not None else state_document(entry)


def _matches(signal: Signal, query: SignalQuery) -> bool:
    labels = dict(signal.labels)
    if query.name is not None and signal.name != query.name:
        return False
    return all(labels.get(key) == value for key, value in query.labels.items())


def _signal_json(signal: Signal) -> dict[str, Any]:
    return {"name": signal.name, "labels": dict(signal.labels), "value": signal.value}
