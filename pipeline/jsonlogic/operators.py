"""The operators: RuleCompiler walks a checked rule and compiles each node to SQL.
One method per operator family, with the helpers each needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlglot import exp

from pipeline.jsonlogic.types import (
    ARR,
    BOOL,
    BOTTOM,
    holds_nan,
    json_ty,
    NULL,
    NUM,
    OBJ,
    sql_type,
    STR,
    t_bool,
    t_json,
    t_list,
    t_null,
    t_num,
    t_str,
    Ty,
    V,
)
from pipeline.jsonlogic.sql import (
    and_,
    binary,
    case_when,
    cast,
    FALSE,
    fn,
    is_simple,
    lambda_,
    n_lit,
    not_,
    null_of,
    or_,
    ref,
    s_lit,
    TRUE,
    wrap,
)
from pipeline.jsonlogic.values import (
    as_json,
    canonical_json_text,
    dispatch,
    is_constant_list,
    is_dynamic,
    isnan_guard,
    kind_test,
    literal_json_text,
    OBJECTISH,
    truthy,
)
from pipeline.jsonlogic.coercions import Compiler, NAN
from pipeline.jsonlogic.rules import is_operation, operation, SUPPORTED_OPERATORS
from pipeline.jsonlogic.scopes import ItemScope, ReduceScope, Scope


class RuleCompiler(Compiler):
    """Walks a checked rule and returns V (value) or a BOOLEAN (truthiness) per node."""

    def value(self, node: Any, scope: Scope) -> V:
        if node is None:
            return V(exp.Null(), t_null())
        if isinstance(node, bool):
            return V(TRUE() if node else FALSE(), t_bool())
        if isinstance(node, (int, float)):
            return V(n_lit(node), t_num(integral=isinstance(node, int)))
        if isinstance(node, str):
            return V(s_lit(node), t_str())
        if isinstance(node, list):
            return self.make_list([self.value(item, scope) for item in node])
        if not is_operation(node):
            return V(cast(s_lit(json.dumps(node)), "JSON"), t_json({OBJ}))
        op, args = operation(node)
        return getattr(self, OPERATOR_METHODS[op])(op, args, scope)

    def truth(self, node: Any, scope: Scope) -> exp.Expression:
        """Truthiness of a node's value, pushed through and/or/!/if so no value is materialised."""
        if is_operation(node):
            op, args = operation(node)
            if op == "and":
                return and_(*[self.truth(a, scope) for a in args])
            if op == "or":
                return or_(*[self.truth(a, scope) for a in args])
            if op == "!":
                return not_(self.truth(args[0], scope))
            if op == "!!":
                return self.truth(args[0], scope)
            if op in ("if", "?:") and len(args) >= 2:
                pairs, default = _if_pairs(args)
                whens = [(self.truth(c, scope), self.truth(v, scope)) for c, v in pairs]
                return case_when(whens, self.truth(default, scope) if default is not _ABSENT else FALSE())
        return self.truthy(self.value(node, scope))

    # ---- data --------------------------------------------------------------------------

    def make_list(self, items: list[V]) -> V:
        if not items:
            return V(self.empty_list(BOTTOM), t_list(BOTTOM))
        elem = self._join_elems([v.ty for v in items])
        if elem is not None and elem.rep in ("bool", "num", "str"):
            sqls = [self.coerce(v, elem) for v in items]
            return V(exp.Array(expressions=sqls), t_list(elem))
        kinds = frozenset().union(*(v.ty.kinds for v in items))
        nan = any(holds_nan(v.ty) for v in items)
        return V(exp.Array(expressions=[as_json(v) for v in items]), t_list(t_json(kinds, nan=nan)))

    def op_var(self, op: str, args: list, scope: Scope) -> V:
        path = args[0] if args else None
        found = self._lookup(path, scope)
        has_default = len(args) == 2 and args[1] is not None
        if not has_default or _is_whole_path(path):
            return found if found is not None else V(exp.Null(), t_null())
        default = self.value(args[1], scope)
        if found is None:
            return default
        if not found.ty.nullable:
            return found
        # JS returns the default only for undefined: a JSON null stays null, and COALESCE
        # sees JSON null as a value. A NULL typed column counts as undefined.
        ty, (f, d) = self.unify([found, default])
        if found.defined is not None:
            return V(case_when([(fn("coalesce", found.defined, FALSE()), f)], d), ty)
        kinds = (found.ty.kinds - {NULL} if found.ty.rep != "json" else found.ty.kinds) | default.ty.kinds
        return V(fn("coalesce", f, d), replace(ty, kinds=frozenset(kinds)))

    def _lookup(self, path: Any, scope: Scope) -> V | None:
        if _is_whole_path(path):
            return scope.lookup(("",))
        if isinstance(path, (str, int, float)) and not isinstance(path, bool):
            return scope.lookup(tuple(_js_key(path).split(".")))
        return self._lookup_computed(self.value(path, scope), scope)

    def _lookup_computed(self, key: V, scope: Scope) -> V:
        """A computed path: JS String(key).split("."), or the whole scope for null/""."""
        whole = scope.lookup(("",))
        whole_sql = as_json(whole) if whole is not None else null_of("JSON")
        if key.ty.rep == "json":
            # JSON null is not SQL NULL; make it one so the IS NULL test below sees it.
            is_json_null = binary(exp.EQ, fn("json_type", key.sql), s_lit("NULL"))
            key = V(case_when([(is_json_null, null_of("JSON"))], key.sql), key.ty)

        found_types = []

        def body(k: V) -> exp.Expression:
            def lookup(text: V) -> exp.Expression:
                empty = or_(exp.Is(this=wrap(k.sql), expression=exp.Null()), binary(exp.EQ, text.sql, s_lit("")))
                found = scope.lookup_dynamic(text.sql)  # compares the path with every known name
                found_types.append(found.ty)
                return case_when([(empty, whole_sql)], found.sql)

            return self.bind(self.to_string(k), lookup)

        sql = self.bind(key, body)
        nan = any(holds_nan(t) for t in found_types) or (whole is not None and holds_nan(whole.ty))
        return V(sql, t_json(nan=nan))

    def op_missing(self, op: str, args: list, scope: Scope) -> V:
        keys = args
        if len(args) == 1 and isinstance(args[0], list):
            keys = args[0]
        if all(isinstance(k, (str, int, float)) and not isinstance(k, bool) or k is None for k in keys):
            return self._missing_static(keys, scope)
        key_list = self._missing_keys(args, scope)
        return self._missing_dynamic(key_list, scope)

    def _missing_static(self, keys: list, scope: Scope) -> V:
        all_str = all(isinstance(k, str) for k in keys)
        elem = t_str() if all_str else t_json()
        parts = []
        for key in keys:
            found = self._lookup(key, scope)
            flag = self.bind(found, is_missing) if found is not None else TRUE()
            key_v = self.value(key, scope)
            item = exp.Array(expressions=[key_v.sql if all_str else as_json(key_v)])
            parts.append(case_when([(flag, item)], self.empty_list(elem)))
        if not parts:
            return V(self.empty_list(BOTTOM), t_list(BOTTOM))
        sql = parts[0] if len(parts) == 1 else fn("list_concat", *parts)
        return V(sql, t_list(elem))

    def _missing_keys(self, args: list, scope: Scope) -> V:
        """JS: the first argument if it is an array, else all the arguments, as a SQL list."""
        if len(args) == 1:
            return self._keys_of(self.value(args[0], scope))
        return self.make_list([self.value(a, scope) for a in args])

    def _keys_of(self, first: V) -> V:
        """The single argument of missing as a list of keys: itself if an array, else [itself]."""
        if first.ty.rep == "list":
            return first
        if ARR not in first.ty.kinds:
            return self.make_list([first])
        return V(self.bind(first, lambda f: fn("coalesce", self.as_list(f).sql, self.make_list([f]).sql)),
                 t_list(t_json()))

    def _missing_dynamic(self, keys: V, scope: Scope) -> V:
        name = self.fresh()
        key = V(ref(name), keys.ty.elem if keys.ty.elem.kinds else t_null())
        found = self._lookup_computed(key, scope)
        flag = self.bind(found, is_missing)
        return V(fn("list_filter", keys.sql, lambda_([name], flag)), replace(keys.ty, kinds=frozenset({ARR})))

    def op_missing_some(self, op: str, args: list, scope: Scope) -> V:
        need, options = args
        wanted = self.value(need, scope)
        if isinstance(options, list):
            missing = self.op_missing("missing", [options], scope)
            return self._enough_present(wanted, n_lit(len(options)), missing)
        result_types = []

        def body(opts: V, wanted: V) -> exp.Expression:
            missing = self._missing_dynamic(self._keys_of(opts), scope)
            lst = self.as_list(opts)
            total = fn("coalesce", fn("len", lst.sql), n_lit(0)) if lst else n_lit(0)
            result = self._enough_present(wanted, total, missing)
            result_types.append(result.ty)
            return result.sql

        sql = self.bind_all([wanted, self.value(options, scope)], lambda wo: body(wo[1], wo[0]))
        return V(sql, result_types[0])

    def _enough_present(self, need: V, total: exp.Expression, missing: V) -> V:
        """missing_some: no keys once `need` of the `total` are present, else the missing ones."""
        def body(nm: list[V]) -> exp.Expression:
            n, m = nm
            present = V(binary(exp.Sub, total, fn("len", m.sql)), t_num(integral=True))
            enough = self.relational(n, present, strict=False)
            return case_when([(enough, self.empty_list(m.ty.elem))], m.sql)

        return V(self.bind_all([need, missing], body), missing.ty)

    # ---- logic -------------------------------------------------------------------------

    def op_if(self, op: str, args: list, scope: Scope) -> V:
        pairs, default = _if_pairs(args)
        if not pairs:
            return self.value(default, scope) if default is not _ABSENT else V(exp.Null(), t_null())
        values = [self.value(v, scope) for _, v in pairs]
        values.append(self.value(default, scope) if default is not _ABSENT else V(exp.Null(), t_null()))
        ty, sqls = self.unify(values)
        whens = [(self.truth(c, scope), s) for (c, _), s in zip(pairs, sqls)]
        return V(case_when(whens, sqls[-1]), ty)

    def op_and(self, op: str, args: list, scope: Scope) -> V:
        values = [self.value(a, scope) for a in args]
        if all(v.ty.rep == "bool" and not v.ty.nullable for v in values):
            combine = and_ if op == "and" else or_
            return V(combine(*[v.sql for v in values]), t_bool())
        ty, sqls = self.unify(values)
        if len(values) == 1:
            return V(sqls[0], ty)

        # and: the first falsy operand, else the last; or: the first truthy one, else the last.
        # An operand is tested and returned, so the operands are bound first (the last one too,
        # so that no operand's SQL sits in a lambda body).
        def chain(bound: list[V]) -> exp.Expression:
            whens = []
            for v in bound[:-1]:
                test = truthy(v)
                whens.append((not_(test) if op == "and" else test, self.coerce(v, ty)))
            return case_when(whens, self.coerce(bound[-1], ty))

        return V(self.bind_all(values, chain), ty)

    def op_not(self, op: str, args: list, scope: Scope) -> V:
        test = self.truth(args[0], scope)
        return V(not_(test) if op == "!" else test, t_bool())

    # ---- comparison --------------------------------------------------------------------

    def op_equals(self, op: str, args: list, scope: Scope) -> V:
        a, b = (self.value(x, scope) for x in args)
        strict = op in ("===", "!==")
        result = self.equals(a, b, strict)
        return V(not_(result) if op.startswith("!") else result, t_bool())

    def equals(self, a: V, b: V, strict: bool) -> exp.Expression:
        branch = _strict_eq_branch if strict else self._loose_eq_branch
        if not strict and (is_dynamic(a) or is_dynamic(b)) and not (_is_constant(a) or _is_constant(b)):
            general = self.bind_all([a, b], lambda ab: self._loose_eq_flat(*ab))
        else:
            general = self.bind_all([a, b], lambda ab: dispatch(
                ab[0], lambda ka, ta: dispatch(ab[1], lambda kb, tb: branch(ka, ta, kb, tb))))
        return self._equals_by_text(a, b, strict, general) or self._equals_by_text(b, a, strict, general) or general

    def _equals_by_text(self, a: V, b: V, strict: bool, general: exp.Expression) -> exp.Expression | None:
        """JSON value vs null/boolean/string literal, deciding the common cases with one extraction."""
        text, wanted = canonical_json_text(a), literal_json_text(b)
        if text is None or wanted is None:
            return None
        if strict or isinstance(b.sql, exp.Null):
            return binary(exp.EQ, text, wanted)
        # Loose ==: equal texts are equal; null equals no non-null literal; the rest (numbers,
        # arrays, strings that may coerce) goes through the general comparison.
        whens = [(wanted, TRUE()), (s_lit("null"), FALSE())]
        if isinstance(b.sql, exp.Boolean):
            whens.append((s_lit("false" if b.sql.this else "true"), FALSE()))
        return case_when(whens, general, subject=text)

    def _loose_eq_flat(self, a: V, b: V) -> exp.Expression:
        """JS == as one CASE over kind tests, each conversion written once.

        null only equals null; two arrays/objects are never equal (no identity in SQL); when both
        sides are strings, arrays or objects they compare as strings; everything else as numbers.
        """
        a_null, b_null = kind_test(a, {NULL}), kind_test(b, {NULL})

        def compare(ta: exp.Expression | None, tb: exp.Expression | None) -> exp.Expression:
            whens = [(or_(a_null, b_null), and_(a_null, b_null)),
                     (and_(kind_test(a, OBJECTISH), kind_test(b, OBJECTISH)), FALSE())]
            if ta is not None and tb is not None:
                whens.append((and_(_is_not_null(ta), _is_not_null(tb)), binary(exp.EQ, ta, tb)))
            return case_when(whens, _num_eq(self.number_given_text(a, ta), self.number_given_text(b, tb)))

        return self._with_primitive_texts(a, b, compare)

    def _with_primitive_texts(self, a: V, b: V, body: Callable) -> exp.Expression:
        """body(text of a, text of b): each operand's primitive_text bound once (None if it has none)."""
        texts = [self.primitive_text(a), self.primitive_text(b)]
        present = [V(text, t_str(null=True)) for text in texts if text is not None]

        def inner(bound: list[V]) -> exp.Expression:
            it = iter(bound)
            return body(*[next(it).sql if text is not None else None for text in texts])

        return self.bind_all(present, inner)

    def _loose_eq_branch(self, ka: str, ta: V, kb: str, tb: V) -> exp.Expression:
        """JS abstract equality (==) for two non-null typed views of known kinds."""
        if NULL in (ka, kb):
            return TRUE() if ka == kb else FALSE()
        if ka == kb:
            return _strict_eq_branch(ka, ta, kb, tb)
        if ka == BOOL:
            return self._loose_eq_branch(NUM, self.to_number(ta), kb, tb)
        if kb == BOOL:
            return self._loose_eq_branch(ka, ta, NUM, self.to_number(tb))
        if {ka, kb} <= {ARR, OBJ}:
            return FALSE()  # objects compare by identity; SQL values have none
        if kb == NUM:
            ka, ta, kb, tb = kb, tb, ka, ta
        if ka == NUM:
            other = self.to_number(tb)  # string/array → Number(String(x)); object → NaN
            return _num_eq(ta, other)
        if kb == STR:
            ka, ta, kb, tb = kb, tb, ka, ta
        return binary(exp.EQ, ta.sql, self.to_string(tb).sql)

    def op_compare(self, op: str, args: list, scope: Scope) -> V:
        values = [self.value(x, scope) for x in args]
        strict = op in ("<", ">")
        if op in (">", ">="):
            return V(self.relational(values[1], values[0], strict), t_bool())
        if len(values) == 2:
            return V(self.relational(values[0], values[1], strict), t_bool())
        a, b, c = values
        pa, pb, pc = (_primitive_kinds(v.ty) for v in values)
        if (STR not in pa or STR not in pb) and (STR not in pb or STR not in pc):
            # Both comparisons are numeric: convert the middle operand once.
            return V(self.bind_all([a, self.to_number(b), c], lambda abc: and_(
                self.relational(abc[0], abc[1], strict), self.relational(abc[1], abc[2], strict))), t_bool())

        def both(abc: list[V]) -> exp.Expression:
            x, m, y = abc
            # The middle operand's string and number, bound once for both comparisons.
            text = self.primitive_text(m)
            return self.bind(V(text, t_str(null=True)), lambda tm: self.bind(
                self.number_given_text(m, tm.sql), lambda nm: and_(
                    self.relational(x, replace(m, text=tm.sql, number=nm), strict),
                    self.relational(replace(m, text=tm.sql, number=nm), y, strict))))

        return V(self.bind_all([a, b, c], both), t_bool())

    def relational(self, a: V, b: V, strict: bool) -> exp.Expression:
        """JS a < b (strict) or a <= b: strings compare as strings, anything else as numbers."""
        pa, pb = _primitive_kinds(a.ty), _primitive_kinds(b.ty)
        if pa == {STR} and pb == {STR}:
            return _string_cmp(self.to_string(a), self.to_string(b), strict)
        if STR not in pa or STR not in pb:
            return _num_cmp(self.to_number(a), self.to_number(b), strict)
        if (is_dynamic(a) or is_dynamic(b)) and not (_is_constant(a) or _is_constant(b)):
            # One copy of each conversion, chosen by kind tests: pairwise dispatch would repeat
            # every conversion once per pair of kinds. Against a constant, pairwise dispatch is
            # smaller: the constant's conversions fold.
            def flat(ab: list[V]) -> exp.Expression:
                x, y = ab

                def compare(tx: exp.Expression, ty: exp.Expression) -> exp.Expression:
                    as_strings = and_(_is_not_null(tx), _is_not_null(ty))
                    numbers = _num_cmp(self.number_given_text(x, tx), self.number_given_text(y, ty), strict)
                    return case_when([(as_strings, binary(exp.LT if strict else exp.LTE, tx, ty))], numbers)

                return self._with_primitive_texts(x, y, compare)

            return self.bind_all([a, b], flat)

        def branch(ka: str, ta: V, kb: str, tb: V) -> exp.Expression:
            if ka in (STR, ARR, OBJ) and kb in (STR, ARR, OBJ):
                return _string_cmp(self.to_string(ta), self.to_string(tb), strict)
            return _num_cmp(self.to_number(ta), self.to_number(tb), strict)

        return self.bind_all([a, b], lambda ab: dispatch(
            ab[0], lambda ka, ta: dispatch(ab[1], lambda kb, tb: branch(ka, ta, kb, tb))))

    # ---- arithmetic --------------------------------------------------------------------

    def op_add(self, op: str, args: list, scope: Scope) -> V:
        # json-logic-js: + and * use parseFloat (so null and true are NaN), - / % use Number.
        terms = [self.to_number(self.value(a, scope), parse_float=True) for a in args]
        if not terms:
            return V(n_lit(0), t_num(integral=True))
        node = exp.Add if op == "+" else exp.Mul
        sql = cast(terms[0].sql, "DOUBLE")
        for t in terms[1:]:
            sql = binary(node, sql, cast(t.sql, "DOUBLE"))
        return V(sql, t_num(nan=any(t.ty.nan for t in terms)))

    def op_sub(self, op: str, args: list, scope: Scope) -> V:
        nums = [self.to_number(self.value(a, scope)) for a in args]
        nan = any(n.ty.nan for n in nums) or op in ("/", "%")
        if op == "-" and len(nums) == 1:
            return V(exp.Neg(this=wrap(cast(nums[0].sql, "DOUBLE"))), t_num(nan=nan))
        node = {"-": exp.Sub, "/": exp.Div, "%": exp.Mod}[op]
        # DOUBLE on both sides: integer % 0 raises in DuckDB, double % 0 is NaN as in JS.
        return V(binary(node, cast(nums[0].sql, "DOUBLE"), cast(nums[1].sql, "DOUBLE")), t_num(nan=nan))

    def op_minmax(self, op: str, args: list, scope: Scope) -> V:
        nums = [self.to_number(self.value(a, scope)) for a in args]
        if len(nums) == 1:
            return V(cast(nums[0].sql, "DOUBLE"), t_num(nan=nums[0].ty.nan))
        name = "least" if op == "min" else "greatest"
        risky = [i for i, n in enumerate(nums) if n.ty.nan]
        if not risky:
            return V(fn(name, *[cast(n.sql, "DOUBLE") for n in nums]), t_num())

        def pick(ns: list[V]) -> exp.Expression:
            # Math.min/max return NaN if any argument is NaN; DuckDB's least() would skip it.
            any_nan = or_(*[fn("isnan", ns[i].sql) for i in risky])
            return case_when([(any_nan, NAN())], fn(name, *[cast(n.sql, "DOUBLE") for n in ns]))

        return V(self.bind_all(nums, pick), t_num(nan=True))

    # ---- strings -----------------------------------------------------------------------

    def op_cat(self, op: str, args: list, scope: Scope) -> V:
        parts = [self.to_string(self.value(a, scope), null_text="").sql for a in args]
        if not parts:
            return V(s_lit(""), t_str())
        return V(parts[0] if len(parts) == 1 else fn("concat", *parts), t_str())

    def op_in(self, op: str, args: list, scope: Scope) -> V:
        needle, haystack = (self.value(a, scope) for a in args)
        by_text = _in_by_text(needle, haystack)
        if by_text is not None:
            return V(by_text, t_bool())
        sql = self.bind_all([needle, haystack], lambda nh: dispatch(
            nh[1], lambda kind, hay: _in_branch(self, nh[0], kind, hay)))
        return V(sql, t_bool())

    def in_list(self, needle: V, lst: V) -> exp.Expression:
        """Array.prototype.indexOf(needle) !== -1, i.e. some element === needle."""
        elem = lst.ty.elem
        by_text = _in_by_text(needle, lst)
        if by_text is not None:
            return by_text

        def branch(kind: str, t: V) -> exp.Expression:
            if kind in (ARR, OBJ) or kind not in elem.kinds:
                return FALSE()
            name = self.fresh()
            item = V(ref(name), elem)
            if kind != NULL and elem.rep == t.ty.rep and elem.rep in ("bool", "num", "str"):
                if is_constant_list(lst.sql):
                    return and_(exp.In(this=wrap(t.sql), expressions=list(lst.sql.expressions)),
                                *isnan_guard(t))
                found = fn("coalesce", fn("list_contains", lst.sql, t.sql), FALSE())
                return and_(found, *isnan_guard(t))
            test = dispatch(item, lambda ke, te: _strict_eq_branch(ke, te, kind, t))
            return fn("coalesce", fn("list_bool_or", fn("list_transform", lst.sql, lambda_([name], test))),
                      FALSE())

        return dispatch(needle, branch)

    def op_substr(self, op: str, args: list, scope: Scope) -> V:
        source = self.to_string(self.value(args[0], scope))
        start = self.to_number(self.value(args[1], scope))
        length = self.to_number(self.value(args[2], scope)) if len(args) == 3 else None
        values = [source, start] + ([length] if length is not None else [])
        return V(self.bind_all(values, lambda vs: _substr(*vs)), t_str())

    # ---- arrays ------------------------------------------------------------------------

    def op_merge(self, op: str, args: list, scope: Scope) -> V:
        pieces = [self._merge_piece(self.value(a, scope)) for a in args]
        if not pieces:
            return V(self.empty_list(BOTTOM), t_list(BOTTOM))
        elem = self._join_elems([p.ty.elem for p in pieces])
        if elem is None:
            elem = t_json(frozenset().union(*(p.ty.elem.kinds for p in pieces)),
                          nan=any(holds_nan(p.ty) for p in pieces))
        target = t_list(elem)
        sqls = [self.coerce(p, target) for p in pieces]
        return V(sqls[0] if len(sqls) == 1 else fn("list_concat", *sqls), target)

    def _merge_piece(self, v: V) -> V:
        """JS [].concat(x): arrays contribute their elements, anything else itself."""
        if v.ty.rep == "list":
            if not v.ty.nullable:
                return v
            one_null = exp.Array(expressions=[null_of(sql_type(v.ty.elem))])
            return V(fn("coalesce", v.sql, one_null), t_list(v.ty.elem.with_null(True)))
        if v.ty.rep == "json" and ARR in v.ty.kinds:
            return V(self.bind(v, lambda b: fn("coalesce", cast(b.sql, "JSON[]", try_=True),
                                                exp.Array(expressions=[b.sql]))), t_list(t_json(nan=v.ty.nan)))
        return self.make_list([v])

    def _items(self, node: Any, scope: Scope) -> V | None:
        return self.as_list(self.value(node, scope))

    def _lambda_over(self, lst: V, body_node: Any, to_sql: Callable[[RuleCompiler, Any, Scope], Any]):
        name = self.fresh()
        item = V(ref(name), lst.ty.elem if lst.ty.elem.kinds else t_null())
        return name, to_sql(self, body_node, ItemScope(item))

    def op_map(self, op: str, args: list, scope: Scope) -> V:
        lst = self._items(args[0], scope)
        if lst is None:
            return V(self.empty_list(BOTTOM), t_list(BOTTOM))
        name, body = self._lambda_over(lst, args[1], RuleCompiler.value)
        elem = body.ty if body.ty.rep in ("bool", "num", "str") else None
        body_sql = body.sql if elem is not None else as_json(body)
        elem = elem or json_ty(body.ty)
        mapped = fn("list_transform", lst.sql, lambda_([name], body_sql))
        return V(fn("coalesce", mapped, self.empty_list(elem)), t_list(elem))

    def op_filter(self, op: str, args: list, scope: Scope) -> V:
        lst = self._items(args[0], scope)
        if lst is None:
            return V(self.empty_list(BOTTOM), t_list(BOTTOM))
        name, test = self._lambda_over(lst, args[1], RuleCompiler.truth)
        kept = fn("list_filter", lst.sql, lambda_([name], test))
        return V(fn("coalesce", kept, self.empty_list(lst.ty.elem)), t_list(lst.ty.elem))

    def op_quantifier(self, op: str, args: list, scope: Scope) -> V:
        lst = self._items(args[0], scope)
        if lst is None:
            return V(TRUE() if op == "none" else FALSE(), t_bool())
        name, test = self._lambda_over(lst, args[1], RuleCompiler.truth)
        tests = fn("list_transform", lst.sql, lambda_([name], test))
        # list_bool_and([]) is NULL, which makes "all" of an empty array false as JsonLogic wants.
        combined = fn("coalesce", fn("list_bool_and" if op == "all" else "list_bool_or", tests), FALSE())
        return V(not_(combined) if op == "none" else combined, t_bool())

    def op_reduce(self, op: str, args: list, scope: Scope) -> V:
        init = self.value(args[2], scope) if len(args) == 3 else V(exp.Null(), t_null())
        lst = self._items(args[0], scope)
        if lst is None:
            return init
        cur_name, acc_name = self.fresh(), self.fresh()
        current = V(ref(cur_name), lst.ty.elem if lst.ty.elem.kinds else t_null())
        acc_ty = init.ty
        for _ in range(4):
            body = self.value(args[1], ReduceScope(current, V(ref(acc_name), acc_ty)))
            joined, _ = self.unify([V(exp.Null(), acc_ty), body])
            joined = joined if joined.rep != "null" else t_json({NULL})
            if joined == acc_ty or (joined.rep == acc_ty.rep == "json"):
                break
            acc_ty = joined
        else:
            acc_ty = t_json()
            body = self.value(args[1], ReduceScope(current, V(ref(acc_name), acc_ty)))
        if acc_ty.rep == "null":
            acc_ty = t_json({NULL})
        body_sql = self._exact(body, acc_ty)
        init_sql = self._exact(init, acc_ty)
        step = lambda_([acc_name, cur_name], body_sql)

        def fold(bound: list[V]) -> exp.Expression:
            items, start = bound
            # Not an array: json-logic-js returns the initial value untouched.
            is_null = exp.Is(this=wrap(items.sql), expression=exp.Null())
            return case_when([(is_null, start.sql)], fn("list_reduce", items.sql, step, start.sql))

        return V(self.bind_all([lst, V(init_sql, acc_ty)], fold), acc_ty)

    def _exact(self, v: V, ty: Ty) -> exp.Expression:
        """v as exactly the SQL type of ty: list_reduce needs one accumulator type."""
        sql = self.coerce(v, ty)
        return sql if ty.rep == "json" else cast(sql, sql_type(ty))


_ABSENT = object()


def _if_pairs(args: list) -> tuple[list[tuple[Any, Any]], Any]:
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
    default = args[-1] if len(args) % 2 == 1 else _ABSENT
    return pairs, default


def _is_whole_path(path: Any) -> bool:
    return path is None or path == "" or path == []


def _js_key(key: str | int | float) -> str:
    """JS String(key) for a literal path."""
    if isinstance(key, str):
        return key
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return repr(key) if isinstance(key, float) else str(key)


def is_missing(v: V) -> exp.Expression:
    """json-logic-js "missing": the value is null or the empty string."""

    def branch(kind: str, t: V) -> exp.Expression:
        if kind == NULL:
            return TRUE()
        if kind == STR:
            return binary(exp.EQ, t.sql, s_lit(""))
        return FALSE()

    return dispatch(v, branch)


def _strict_eq_branch(ka: str, ta: V, kb: str, tb: V) -> exp.Expression:
    """JS ===: same kind and same value; arrays and objects never (no identity in SQL)."""
    if ka != kb or ka in (ARR, OBJ):
        return FALSE()
    if ka == NULL:
        return TRUE()
    if ka == NUM:
        return _num_eq(ta, tb)
    return binary(exp.EQ, ta.sql, tb.sql)


def _num_eq(a: V, b: V) -> exp.Expression:
    # DuckDB says NaN = NaN; JS says NaN is equal to nothing. NaN = x is false for other x.
    if _is_nan_constant(a) or _is_nan_constant(b):
        return FALSE()
    if not (a.ty.nan and b.ty.nan):
        return binary(exp.EQ, a.sql, b.sql)
    if is_simple(a.sql):
        return and_(binary(exp.EQ, a.sql, b.sql), not_(fn("isnan", a.sql)))
    return fn("coalesce", binary(exp.EQ, _not_nan(a.sql), b.sql), FALSE())


def _is_nan_constant(v: V) -> bool:
    """Number("apple") and the like, folded by the compiler: no comparison with it holds."""
    e = v.sql
    return isinstance(e, exp.Cast) and isinstance(e.this, exp.Literal) and e.this.this == "NaN"


def _not_nan(x: exp.Expression) -> exp.Expression:
    """x, or NULL when x is NaN: a test of x evaluated once."""
    return fn("nullif", x, NAN())


def _is_not_null(x: exp.Expression) -> exp.Expression:
    return not_(exp.Is(this=wrap(x), expression=exp.Null()))


def _is_constant(v: V) -> bool:
    e = v.sql
    if isinstance(e, exp.Cast):  # a double literal
        e = e.this
    return isinstance(e, (exp.Literal, exp.Boolean, exp.Null))


def _primitive_kinds(ty: Ty) -> set[str]:
    """Kinds after JS ToPrimitive: arrays and objects become strings."""
    return {STR if k in (ARR, OBJ) else k for k in ty.kinds}


def _string_cmp(a: V, b: V, strict: bool) -> exp.Expression:
    return binary(exp.LT if strict else exp.LTE, a.sql, b.sql)


def _num_cmp(a: V, b: V, strict: bool) -> exp.Expression:
    # In JS every comparison with NaN is false. DuckDB orders NaN above every number (and NaN <=
    # NaN), so NaN on the left already compares false; only a NaN on the right needs a test.
    node = exp.LT if strict else exp.LTE
    if _is_nan_constant(a) or _is_nan_constant(b):
        return FALSE()
    if not b.ty.nan:
        return binary(node, a.sql, b.sql)
    if is_simple(b.sql):
        return and_(binary(node, a.sql, b.sql), not_(fn("isnan", b.sql)))
    return fn("coalesce", binary(node, a.sql, _not_nan(b.sql)), FALSE())


def _in_by_text(needle: V, lst: V) -> exp.Expression | None:
    """A JSON value in a list of null/boolean/string literals, decided by one extraction."""
    text = canonical_json_text(needle)
    if text is None or not isinstance(lst.sql, exp.Array) or not lst.sql.expressions:
        return None
    wanted = [literal_json_text(V(e, t_null())) for e in lst.sql.expressions]
    return exp.In(this=wrap(text), expressions=wanted) if all(w is not None for w in wanted) else None


def _in_branch(compiler: RuleCompiler, needle: V, kind: str, hay: V) -> exp.Expression:
    if kind == STR:
        # JS: if (!b) return false, so nothing is "in" the empty string.
        text = compiler.to_string(needle).sql
        return and_(binary(exp.NEQ, hay.sql, s_lit("")), fn("contains", hay.sql, text))
    if kind == ARR:
        return compiler.in_list(needle, hay)
    return FALSE()


def _to_integer(n: V) -> exp.Expression:
    """JS ToIntegerOrInfinity: NaN → 0, otherwise truncate toward zero."""
    if n.ty.integral:
        return cast(n.sql, "DOUBLE")
    truncated = fn("trunc", n.sql)
    return case_when([(fn("isnan", n.sql), n_lit(0.0))], truncated) if n.ty.nan else truncated


def _substr(source: V, start: V, length: V | None = None) -> exp.Expression:
    """json-logic-js substr: String.prototype.substr, with a negative length cutting from the end."""
    size = cast(fn("length", source.sql), "DOUBLE")
    st = _to_integer(start)
    begin = case_when([(binary(exp.LT, st, n_lit(0)), fn("greatest", binary(exp.Add, size, st), n_lit(0)))],
                      fn("least", st, size))
    first = binary(exp.Add, cast(begin, "BIGINT"), n_lit(1))
    if length is None:
        return fn("substring", source.sql, first)
    rest = binary(exp.Sub, size, begin)
    negative = _num_cmp(length, V(n_lit(0), t_num(integral=True)), strict=True)
    take = case_when([(negative, fn("greatest", fn("trunc", binary(exp.Add, rest, length.sql)), n_lit(0)))],
                     fn("greatest", fn("least", _to_integer(length), rest), n_lit(0)))
    return fn("substring", source.sql, first, cast(take, "BIGINT"))


OPERATOR_METHODS = {
    "var": "op_var", "missing": "op_missing", "missing_some": "op_missing_some",
    "if": "op_if", "?:": "op_if", "and": "op_and", "or": "op_and", "!": "op_not", "!!": "op_not",
    "==": "op_equals", "===": "op_equals", "!=": "op_equals", "!==": "op_equals",
    "<": "op_compare", "<=": "op_compare", ">": "op_compare", ">=": "op_compare",
    "+": "op_add", "*": "op_add", "-": "op_sub", "/": "op_sub", "%": "op_sub",
    "min": "op_minmax", "max": "op_minmax", "cat": "op_cat", "in": "op_in", "substr": "op_substr",
    "merge": "op_merge", "map": "op_map", "filter": "op_filter", "reduce": "op_reduce",
    "all": "op_quantifier", "some": "op_quantifier", "none": "op_quantifier",
}
assert set(OPERATOR_METHODS) == SUPPORTED_OPERATORS
