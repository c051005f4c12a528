"""The error tree of ha-harness.

    HarnessError                 anything the harness raises on purpose
     ├── InputError              bad user input (file, field, value): exit code 2, nothing started
     ├── IncompleteRunError      a stored run lacks a file a verdict needs: exit code 3 (unknown)
     └── InfraError              the infrastructure failed (engine, image, node never ready): exit code 4

A corrupt stored run (a line of history.jsonl that is not JSON, an op without a field) is an InputError
``FILE:LINE: what is wrong``; one missing a file is an IncompleteRunError. Neither ever reads as lost data.
A misbehaving database or broker is never an exception: it is a checker Result.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class InputError(HarnessError):
    """Bad input: a topology/scenario file, a field, a command-line argument. Exit code 2."""


class IncompleteRunError(HarnessError):
    """A stored run lacks a file a verdict needs (history, events, scenario, topology). Exit code 3: the
    verdict is unknown, never "data lost"."""


class InfraError(HarnessError):
    """The infrastructure failed: Docker engine, image build, a node that never got ready. Exit code 4."""
