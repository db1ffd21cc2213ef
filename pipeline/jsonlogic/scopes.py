"""Scopes: what `var` reads, the row, an array item (map/filter/...), or reduce's pair.
"""

from __future__ import annotations

from sqlglot import exp

from pipeline.jsonlogic.types import holds_nan, OBJ, t_json, V
from pipeline.jsonlogic.sql import binary, case_when, fn, s_lit
from pipeline.jsonlogic.values import as_json
from pipeline.jsonlogic.variables import extract, json_extract_dynamic, Variables


class RowScope:
    def __init__(self, variables: Variables):
        self.variables = variables

    def lookup(self, segments: tuple[str, ...]) -> V | None:
        return self.variables.lookup(segments)

    def lookup_dynamic(self, path: exp.Expression) -> V:
        return self.variables.lookup_dynamic(path)


class ItemScope:
    def __init__(self, item: V):
        self.item = item

    def lookup(self, segments: tuple[str, ...]) -> V | None:
        if segments == ("",):
            return self.item
        return extract(self.item, segments)

    def lookup_dynamic(self, path: exp.Expression) -> V:
        whole = case_when([(binary(exp.EQ, path, s_lit("")), as_json(self.item))],
                      json_extract_dynamic(as_json(self.item), path))
        return V(whole, t_json(nan=holds_nan(self.item.ty)))


class ReduceScope:
    def __init__(self, current: V, accumulator: V):
        self.fields = {"current": current, "accumulator": accumulator}

    def _whole(self) -> V:
        args = []
        for key, v in self.fields.items():
            args += [s_lit(key), as_json(v)]
        return V(fn("json_object", *args), t_json({OBJ}, nan=any(holds_nan(v.ty) for v in self.fields.values())))

    def lookup(self, segments: tuple[str, ...]) -> V | None:
        if segments == ("",):
            return self._whole()
        head, *rest = segments
        return extract(self.fields[head], tuple(rest)) if head in self.fields else None

    def lookup_dynamic(self, path: exp.Expression) -> V:
        return ItemScope(self._whole()).lookup_dynamic(path)


Scope = RowScope | ItemScope | ReduceScope
