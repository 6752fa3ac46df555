"""Facets on the fields of a JSON `metadata` column (prompts, prompt_overview).

Datasette facets on columns; a prompt's subject or level lives inside its
metadata JSON. `?_facet_metadata=subject` counts the prompts by
metadata.subject, and `?_metadata.subject=algebra` keeps those whose subject
is algebra (values compared as text, as the facet shows them). Both run
parameterised SQL: the field name and value are bound, never spliced in.
"""

import json
import sqlite3

from datasette.database import QueryInterrupted
from datasette.facets import Facet
from datasette.filters import FilterArguments
from datasette.utils import escape_sqlite, path_with_added_args, path_with_removed_args

COLUMN = "metadata"
ARG_PREFIX = "_metadata."

FIELDS_SQL = """
select distinct each.key from ({sql}) as inner, json_each(inner.{column}) as each
where json_valid(inner.{column}) and each.type in ('text', 'integer', 'real', 'true', 'false')
limit 20
"""
COUNTS_SQL = """
select cast(json_extract({column}, :rsr_facet_path) as text) as value, count(*) as count
from ({sql}) where json_valid({column})
group by value order by count desc, value limit {limit}
"""
FILTER_SQL = "cast(json_extract({column}, :{path}) as text) = :{value}"


def field_path(field) -> str:
    "The JSON path of a top-level field, quoted so any name works."
    return "$." + json.dumps(field)


class MetadataFacet(Facet):
    type = "metadata"

    async def _has_metadata(self):
        return COLUMN in await self.get_columns(self.sql, self.params)

    async def suggest(self):
        if not await self._has_metadata():
            return []
        enabled = {c["config"]["simple"] for c in self.get_configs()}
        try:
            rows = await self.ds.execute(
                self.database, FIELDS_SQL.format(sql=self.sql, column=escape_sqlite(COLUMN)),
                self.params, truncate=False, log_sql_errors=False,
                custom_time_limit=self.ds.setting("facet_suggest_time_limit_ms"))
        except (QueryInterrupted, sqlite3.OperationalError):
            return []
        return [
            {"name": f"{COLUMN}.{row[0]}", "type": self.type,
             "toggle_url": self.ds.absolute_url(self.request, self.ds.urls.path(
                 path_with_added_args(self.request, {"_facet_metadata": row[0]})))}
            for row in rows if row[0] not in enabled
        ]

    async def facet_results(self):
        results, timed_out = [], []
        if not await self._has_metadata():
            return results, timed_out
        size = self.get_facet_size()
        pairs = self.get_querystring_pairs()
        for source_and_config in self.get_configs():
            field = source_and_config["config"]["simple"]
            sql = COUNTS_SQL.format(sql=self.sql, column=escape_sqlite(COLUMN), limit=size + 1)
            try:
                rows = await self.ds.execute(
                    self.database, sql, {**dict(self.params), "rsr_facet_path": field_path(field)},
                    truncate=False, custom_time_limit=self.ds.setting("facet_time_limit_ms"))
            except QueryInterrupted:
                timed_out.append(f"{COLUMN}.{field}")
                continue
            values = []
            arg = ARG_PREFIX + field
            for row in rows.rows[:size]:
                value = "" if row["value"] is None else row["value"]
                selected = (arg, value) in pairs
                change = path_with_removed_args if selected else path_with_added_args
                values.append({
                    "value": value, "label": value if row["value"] is not None else "(none)",
                    "count": row["count"], "selected": selected,
                    "toggle_url": self.ds.absolute_url(
                        self.request, change(self.request, {arg: value})),
                })
            results.append({
                "name": f"{COLUMN}.{field}", "type": self.type, "results": values,
                "hideable": source_and_config["source"] != "metadata",
                "toggle_url": self.ds.urls.path(
                    path_with_removed_args(self.request, {"_facet_metadata": field})),
                "truncated": len(rows) > size,
            })
        return results, timed_out


def metadata_filters(request) -> FilterArguments:
    """The where clauses for ?_metadata.FIELD=VALUE arguments (a name without a
    double underscore, which Datasette would read as a column filter)."""
    clauses, params, descriptions = [], {}, []
    pairs = [(k, v) for k in request.args for v in request.args.getlist(k)]
    for i, (key, value) in enumerate(p for p in pairs if p[0].startswith(ARG_PREFIX)):
        field = key[len(ARG_PREFIX):]
        path, bound = f"rsr_meta_path_{i}", f"rsr_meta_value_{i}"
        clauses.append(FILTER_SQL.format(column=escape_sqlite(COLUMN), path=path, value=bound))
        params.update({path: field_path(field), bound: value})
        descriptions.append(f'metadata.{field} = "{value}"')
    return FilterArguments(clauses, params, descriptions)
