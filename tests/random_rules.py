"""Deterministic random JsonLogic rules of a given depth, for the compiler's size tests and
its benchmark (benchmarks/bench_jsonlogic_compile.py): `or`, `and`, `if`, `in`, chained `<=`,
`<`, `==`, `!`, `+`, `cat` over six variables, typed or declared JSON."""

from __future__ import annotations

import random

TYPED = {"n1": "INTEGER", "n2": "DOUBLE", "s1": "VARCHAR", "s2": "VARCHAR", "b1": "BOOLEAN", "tags": "VARCHAR[]"}
STRINGS = ["gold", "silver", "", "0", "12", "vip"]


def leaf(rng: random.Random) -> object:
    roll = rng.random()
    if roll < 0.55:
        return {"var": rng.choice(list(TYPED))}
    if roll < 0.75:
        return rng.randint(-5, 100)
    if roll < 0.95:
        return rng.choice(STRINGS)
    return rng.choice([True, False, None])


def rule_of_depth(rng: random.Random, depth: int) -> object:
    """A rule whose deepest path has `depth` operators: one child one level down, others shallower."""
    if depth == 0:
        return leaf(rng)

    def child(deepest: bool) -> object:
        return rule_of_depth(rng, depth - 1 if deepest else rng.randint(0, depth - 1))

    def children(count: int) -> list:
        deep = rng.randrange(count)
        return [child(i == deep) for i in range(count)]

    op = rng.choice(["or", "and", "if", "in", "<=", "<", "==", "!", "+", "cat"])
    if op in ("or", "and"):
        return {op: children(rng.randint(2, 3))}
    if op in ("if", "<="):
        return {op: children(3)}
    if op == "in":
        if rng.random() < 0.5:
            return {op: [child(True), rng.sample(STRINGS, 3)]}
        return {op: [child(True), {"var": "tags"}]}
    if op == "!":
        return {op: [child(True)]}
    return {op: children(2)}
