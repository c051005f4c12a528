"""The error tree of ha-harness.

    HarnessError                 anything the harness raises on purpose
     ├── InputError              bad user input (file, field, value): exit code 2, nothing started
     └── InfraError              the infrastructure failed (engine, image, node never ready): exit code 4

A misbehaving database or broker is never an exception: it is a checker Result.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class InputError(HarnessError):
    """Bad input: a topology/scenario file, a field, a command-line argument. Exit code 2."""


class InfraError(HarnessError):
    """The infrastructure failed: Docker engine, image build, a node that never got ready. Exit code 4."""
