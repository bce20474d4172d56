"""Dagster resource for the PostgreSQL that serves nbp_current to the apps."""

from pathlib import Path
from typing import Any, Optional

import dagster as dg


class PostgresResource(dg.ConfigurableResource):
    """A configured server (url) or, when url is empty, a local server in data_dir
    that is started on first use.

    The URL holds the password: deployments pass `url=dg.EnvVar("NBP_POSTGRES_URL")`, so
    Dagster keeps and shows only the variable's name (run storage, job snapshots, the UI's
    resource config) and resolves the value when a run starts. A literal URL is for tests
    and scripts that never reach a Dagster instance.
    """

    url: Optional[str] = None
    data_dir: str

    def __getattribute__(self, name: str) -> Any:
        # In a run Dagster hands over the resolved value; outside one (the CLI's report, tests
        # reading defs.resources) `url` reads the same: the variable's current value. Dagster's
        # own view of the config (dict(self), the config schema) still holds the reference.
        value = super().__getattribute__(name)
        if name == "url" and isinstance(value, dg.EnvVar):
            return value.get_value()
        return value

    def conninfo(self) -> str:
        from nbp_assets.core import postgres_server  # imports psycopg: only when a run needs it

        return postgres_server.resolve_postgres_url(self.url, Path(self.data_dir))

    def start_in_background(self) -> None:
        """Have the local server (no url) starting while the run does other work; a no-op for
        a configured server."""
        from nbp_assets.core import postgres_server

        postgres_server.start_in_background(self.url, Path(self.data_dir))

    def describe(self) -> str:
        if not self.url:
            return f"embedded server, data in {self.data_dir}"
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.hostname or 'socket'}:{parts.port or 5432}{parts.path}"  # never the password
