"""Airflow's LocalFilesystemBackend for a connections file of many practices: one parse per file change.

`airflow.secrets.local_filesystem.LocalFilesystemBackend` parses the whole file and builds every connection in it
(ORM models, each password encrypted) on each lookup, twice: at 1,000 practices (2,000 connections, 380 KB of JSON)
that measured 0.55 s per lookup without a Fernet key and 0.9 s with one, paid by every connection any task asks for
(the backend comes before the environment variables, so the store's and SMTP's lookups pay it too). This subclass
keeps the parsed JSON until the file is replaced or its modification time or size changes, and builds only the
connection asked for, of the class Airflow gives the backend in that process (the task SDK's Connection in tasks and
triggers). Same kwargs (`connections_file_path`, ...), same file shape; JSON files only (others: the parent's way).
An edited file is seen on the next lookup.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.secrets.local_filesystem import LocalFilesystemBackend, _create_connection


class ConnectionsFileBackend(LocalFilesystemBackend):
    """LocalFilesystemBackend that parses its JSON connections file once per change, not once per lookup."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parsed: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    def _entries(self) -> dict[str, Any]:
        stat = os.stat(self.connections_file)
        # The inode too: the generator replaces the file (a new inode), which a coarse mtime might not show.
        version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._parsed is None or self._parsed[0] != version:
            # The parent's parser: the same errors (file missing, JSON syntax with line numbers) as Airflow's own.
            from airflow.secrets.local_filesystem import _parse_secret_file

            self._parsed = (version, _parse_secret_file(self.connections_file))
        return self._parsed[1]

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        """The connection in Airflow's JSON (or URI) form. airflow-init checks the whole file with Airflow's own
        rules (allowed keys, `extra` xor `extra_dejson`): docker/preflight.py."""
        value = self._entries().get(conn_id)
        if value is None or isinstance(value, str):
            return value
        fields = dict(value)
        if fields.pop("conn_id", conn_id) != conn_id:
            raise ValueError(f"connection {conn_id!r}: its conn_id field names another connection")
        if "extra_dejson" in fields:
            fields["extra"] = fields.pop("extra_dejson")
        return json.dumps(fields)

    def get_connection(self, conn_id: str, team_name: str | None = None):
        if not self.connections_file or not str(self.connections_file).endswith(".json"):
            return super().get_connection(conn_id, team_name)
        entry = self._entries().get(conn_id)
        if entry is None:
            return None
        if getattr(self, "_connection_class", None) is None:  # built outside Airflow's loader: the parent's way
            return _create_connection(conn_id, json.loads(json.dumps(entry)))  # a copy: it adds conn_id
        # The class Airflow gave this backend for the process: the task SDK's Connection on workers and the
        # triggerer (no ORM model, no password encryption), the ORM model in the api-server and scheduler.
        return self.deserialize_connection(conn_id, self.get_conn_value(conn_id))
