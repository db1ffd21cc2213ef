"""The datasets omneo-bulk reads, each declared as one pandera model.

`DATASETS` lists them in validation order: a dataset comes after those it references.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import pandera.polars as pa

from schemas import (
    benefit_definitions,
    benefits,
    profiles,
    redemption_items,
    redemptions,
    returns,
    transactions,
)
from schemas._common import Reference


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset's name, pandera model, key and references to other datasets."""

    name: str
    model: type[pa.DataFrameModel]
    key: str | None
    unique: tuple[str, ...]
    references: tuple[Reference, ...]
    row_checks: dict[str, tuple[str, str]]

    @property
    def schema(self) -> pa.DataFrameSchema:
        return self.model.to_schema()

    @property
    def required_columns(self) -> list[str]:
        return [name for name, column in self.schema.columns.items() if column.required]

    @property
    def columns(self) -> list[str]:
        return list(self.schema.columns)


def _dataset(name: str, module: ModuleType, model: type[pa.DataFrameModel]) -> Dataset:
    key = module.KEY
    unique = getattr(module, "UNIQUE", (key,) if key else ())
    row_checks = getattr(module, "ROW_CHECKS", {})
    return Dataset(name, model, key, tuple(unique), tuple(module.REFERENCES), row_checks)


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        _dataset("benefit_definitions", benefit_definitions, benefit_definitions.BenefitDefinitions),
        _dataset("profiles", profiles, profiles.Profiles),
        _dataset("benefits", benefits, benefits.Benefits),
        _dataset("redemptions", redemptions, redemptions.Redemptions),
        _dataset("redemption_items", redemption_items, redemption_items.RedemptionItems),
        _dataset("returns", returns, returns.Returns),
        _dataset("transactions", transactions, transactions.Transactions),
    )
}

__all__ = ["DATASETS", "Dataset", "Reference"]
