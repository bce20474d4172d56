"""Dagster resource for the PostgreSQL that serves nbp_current to the apps."""


from pathlib import Path
from typing import Optional

import dagster as dg


class PostgresResource(dg.ConfigurableResource):
    """A configured server (url) or, when url is empty, a local server in data_dir
    that is started on first use."""

    url: Optional[str] = None
    data_dir: str

    def conninfo(self) -> str:
        from nbp_assets.storage import postgres as pg

        return pg.resolve_postgres_url(self.url, Path(self.data_dir))

    def describe(self) -> str:
        if not self.url:
            return f"embedded server, data in {self.data_dir}"
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.hostname or 'socket'}:{parts.port or 5432}{parts.path}"  # never the password
