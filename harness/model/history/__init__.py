"""Histories, fault events and probe samples: the data a run records and the checkers read.

An operation history follows Jepsen's model. A client process *invokes* an op, then *completes* it with the
same process id and one of three outcomes:

* ``ok``: it happened;
* ``fail``: it certainly did not happen (the client knows, e.g. a constraint violation before commit);
* ``info``: indeterminate (timeout, connection lost before the ack). The op may or may not have happened,
  and may still happen later. The process that issued it is *retired*: its next op uses a fresh process id
  (``HistoryWriter.next_process``), so each process has at most one op in flight.

All times are ``int`` nanoseconds since run start (see ``harness.model.clock``).

Modules, one concern each (everything public is re-exported here):

* ``ops``: ``Op``, the op types (``TYPES``; codes ``INVOKE``/``OK``/``FAIL``/``INFO``);
* ``columns``: ``History``, the columnar in-memory history (numpy arrays plus interned names, so that
  checkers handle 10^7 ops in seconds), and ``HistoryBuilder``;
* ``oplog``: history.jsonl, one op per line: ``HistoryWriter``, ``read_history``, ``write_history``;
* ``events``: fault windows, ``Event`` records (events.jsonl): ``EventWriter``, ``read_events``;
* ``samples``: probe readings, ``Sample`` records (samples.jsonl): ``SampleWriter``, ``read_samples``;
* ``jsonl``: the JSONL plumbing they share: ``JsonlAppender``, reading with ``FILE:LINE`` errors;
* ``fields``: checking one record's fields (``RecordError``).

Every reader raises ``harness.errors.InputError`` ``FILE:LINE: what is wrong`` on a malformed file. The EDN
export for Elle and Knossos lives in ``harness.report.edn``.
"""

from __future__ import annotations

from harness.model.history.columns import History, HistoryBuilder
from harness.model.history.events import Event, EventWriter, read_events, write_events
from harness.model.history.jsonl import JsonlAppender
from harness.model.history.oplog import HistoryWriter, read_history, write_history
from harness.model.history.ops import FAIL, INFO, INVOKE, OK, TYPES, Op, OpType
from harness.model.history.samples import Sample, SampleWriter, read_samples, write_samples

__all__ = [
    "FAIL",
    "INFO",
    "INVOKE",
    "OK",
    "TYPES",
    "Event",
    "EventWriter",
    "History",
    "HistoryBuilder",
    "HistoryWriter",
    "JsonlAppender",
    "Op",
    "OpType",
    "Sample",
    "SampleWriter",
    "read_events",
    "read_history",
    "read_samples",
    "write_events",
    "write_history",
    "write_samples",
]
