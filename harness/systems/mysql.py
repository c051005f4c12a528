"""What the MySQL-protocol systems (Galera, MMM) share: the clients' database and account."""

from __future__ import annotations

USER = "harness"
PASSWORD = "harness"
DATABASE = "harness"
