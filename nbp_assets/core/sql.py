"""The one loader and renderer of the project's SQL files.

A domain keeps its queries beside its code as `nbp_assets/<domain>/sql/<name>.sql`: a
jinja2 template with named parameters (relations passed in like dbt's `ref`, constants,
VALUES rows). Where the engines truly differ a file is spelled per engine,
`<name>.<engine>.sql` (engine `duckdb` or `snowflake`), and the renderer picks it over the
plain `<name>.sql`. Every template sees the shared macros of `core/sql/macros.sql` by name
(`round6`, `clip01`, `dbl`, `lit`, `day`, `timestamp`, `sum_left_to_right`, ...): the
spellings that make the engines give numpy's exact floats, written once.

Python passes parameters and runs what comes back; it never assembles query text itself.
`render` returns the text and its sha256 digest; `script` joins the statements a step runs
into the text `compile` writes, and `digest` is that text's sha256 (a materialization's
`sql_digest`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Iterable

import jinja2
import jinja2.runtime

PACKAGE = "nbp_assets"
MACROS = "core/sql/macros.sql"
ENGINES = ("duckdb", "snowflake")


@dataclass(frozen=True)
class Sql:
    """A rendered query: its text, the file it came from and the text's sha256."""

    text: str
    path: str

    @property
    def digest(self) -> str:
        return sha256(self.text)

    def __str__(self) -> str:
        return self.text


def _source(path: str) -> tuple[str, str, callable] | None:
    resource = files(PACKAGE).joinpath(path)
    if not resource.is_file():
        return None
    return resource.read_text(encoding="utf-8"), path, lambda: True


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_source),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    macros = env.get_template(MACROS).module
    env.globals.update({name: value for name, value in vars(macros).items() if isinstance(value, jinja2.runtime.Macro)})
    return env


def template_path(domain: str, name: str, engine: str | None = None) -> str:
    """The file `render` reads: the engine's own spelling if there is one, else the plain file."""
    if engine is not None:
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
        own = f"{domain}/sql/{name}.{engine}.sql"
        if files(PACKAGE).joinpath(own).is_file():
            return own
    return f"{domain}/sql/{name}.sql"


def render(domain: str, name: str, engine: str | None = None, **params) -> Sql:
    """`<domain>/sql/<name>[.<engine>].sql` rendered with `params` (a missing one fails)."""
    path = template_path(domain, name, engine)
    try:
        template = environment().get_template(path)
    except jinja2.TemplateNotFound:
        raise FileNotFoundError(f"no SQL file {PACKAGE}/{path}") from None
    return Sql(_clean(template.render(**params)), path)


def _clean(text: str) -> str:
    """No trailing blanks, no blank runs, no leading/trailing empty lines."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out)


def script(statements: Iterable[str | Sql]) -> str:
    """Statements as one script, each ended by `;` and a blank line: what `compile` writes."""
    return "".join(f"{str(s).strip()};\n\n" for s in statements)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digest(statements: Iterable[str | Sql]) -> str:
    """sha256 of the statements' script: one digest for all the SQL a step ran."""
    return sha256(script(statements))
