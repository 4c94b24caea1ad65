"""The scenario's ``cost:`` block and the shared price file (docs/cost.md).

    cost:
      instances_url: http://127.0.0.1:18090/instances   # cloud-api's instance record (lifetimes)
      routes: {hosted-model: hosted}                     # proxy route -> tier, when answers do not say
      prices: ../prices/example.yaml                     # a shared price file, or inline:
      currency: USD
      example: true                                      # example prices, not a vendor's list price
      tiers:
        hosted: {per_1m_input_tokens: 3.0, per_1m_output_tokens: 15.0}
        gpu:    {per_instance_hour: 4.0}
        cpu:    {per_1k_requests: 0.05}
      regions:
        region-b: {per_instance_hour: 6.5}               # overrides the gpu tier's hourly price there

A price file is ``apiVersion: drill/v1``, ``kind: Prices`` with the same ``currency``,
``example``, ``tiers`` and ``regions``. Without prices the counts alone are reported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, field_validator, model_validator

from harness.scenario.common import Strict, check_url, control_chars
from harness.scenario.loader import path_problem

__all__ = ["CostSpec", "PriceFile", "Prices", "RegionPrice", "TierPrice", "parse_cost_bound"]

_FACTOR = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*x\s*baseline\s*$")
Money = Annotated[float, Field(ge=0, le=1e9)]


def _safe_path(value: Any) -> Any:
    if isinstance(value, (str, Path)):
        problem = path_problem(value)
        if problem:
            raise ValueError(problem)
    return value


class TierPrice(Strict):
    """What one tier costs: per million tokens (a hosted API), per instance-hour (a GPU pool,
    counted from the cloud's instance record) or per thousand answers served."""

    per_1m_input_tokens: Money | None = None
    per_1m_output_tokens: Money | None = None
    per_instance_hour: Money | None = None
    per_1k_requests: Money | None = None

    @model_validator(mode="after")
    def _some_price(self) -> TierPrice:
        if all(v is None for v in (self.per_1m_input_tokens, self.per_1m_output_tokens,
                                   self.per_instance_hour, self.per_1k_requests)):
            raise ValueError("give a price: per_1m_input_tokens, per_1m_output_tokens, per_instance_hour "
                             "or per_1k_requests")
        return self


class RegionPrice(Strict):
    """An instance-hour price in one region (a pricier cold path): overrides the tier's."""

    per_instance_hour: Money


class Prices(Strict):
    currency: str = "USD"
    example: bool = False  # example prices (documented as such), not a vendor's list price
    tiers: dict[str, TierPrice] = Field(default_factory=dict)
    regions: dict[str, RegionPrice] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if not re.match(r"^[A-Z]{3}$", v):
            raise ValueError(f"expected a three-letter currency code like USD or EUR, got {v!r}")
        return v

    @field_validator("tiers", "regions")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not name or len(name) > 63 or control_chars(name):
                raise ValueError(f"{name!r}: expected a tier or region name of 1 to 63 characters")
        return v


class PriceFile(Prices):
    """A shared price file several scenarios refer to (``cost.prices``)."""

    api_version: Literal["drill/v1"] = Field(alias="apiVersion")
    kind: Literal["Prices"]


class CostSpec(Prices):
    """``cost:``: where the instance record is, and the prices (inline or ``prices: FILE``)."""

    prices: Annotated[Path, BeforeValidator(_safe_path)] | None = None
    instances_url: str | None = None
    # HTTP fault proxy route -> the tier behind it, when the answers do not say (a third-party
    # gateway whose X-Served-By is not the route's name); else learned from the answers.
    routes: dict[str, str] = Field(default_factory=dict)
    _loaded: Prices | None = PrivateAttr(default=None)

    @field_validator("instances_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        return None if v is None else check_url(v, "http://127.0.0.1:18090/instances")

    @model_validator(mode="after")
    def _one_source(self) -> CostSpec:
        if self.prices is not None and (self.tiers or self.regions):
            raise ValueError("give prices inline (tiers, regions) or in a price file (prices), not both")
        return self

    def use_file(self, prices: Prices) -> None:
        """The validated price file ``prices`` names (scenario loading resolves it)."""
        self._loaded = prices

    @property
    def effective(self) -> Prices | None:
        """The prices in force: the file's, else the inline ones; None when there are none."""
        if self._loaded is not None:
            return self._loaded
        if self.tiers or self.regions:
            return Prices(currency=self.currency, example=self.example, tiers=self.tiers, regions=self.regions)
        return None


def parse_cost_bound(value: Any) -> tuple[float | None, float | None]:
    """``2.5`` -> (2.5, None) (money per 1,000 requests); ``"1.5x baseline"`` -> (None, 1.5)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e12:
        return float(value), None
    if isinstance(value, str):
        match = _FACTOR.match(value)
        if match and 0 < float(match.group(1)) < 1e6:
            return None, float(match.group(1))
    raise ValueError(f"expected money per 1,000 requests like 2.5, or a factor like '1.5x baseline', got {value!r}")
