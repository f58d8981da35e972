"""The keys of the `tune:` section (`plait tune`): how many trials, how long, the sampler and pruner, and the search
space, each config path (as `--set` names it) mapped to a distribution. No torch and no Optuna import, so a config
validates in a fraction of a second; `plait/tuning/` reads them."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, PositiveInt, Tag, field_validator, model_validator

from plait.schema import Section

Whole = int  # the `int` distribution's own field would shadow the builtin in its class body
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def seconds_of(duration: str | float | None) -> float | None:
    """`2h`, `90m`, `45s`, `1.5d` or a number of seconds → seconds; None stays None."""
    if duration is None or isinstance(duration, (int, float)):
        return duration
    match = DURATION.match(str(duration))
    if not match:
        raise ValueError(f"{duration!r}: expected a duration such as 90m, 2h, 45s or 1.5d")
    return float(match.group(1)) * SECONDS[match.group(2)]


class Uniform(Section):
    uniform: tuple[float, float] = Field(description="[low, high]: any number between, equally likely.")

    @model_validator(mode="after")
    def _ordered(self):
        low, high = self.uniform
        if not low < high:
            raise ValueError(f"uniform: [{low}, {high}]: low must be below high")
        return self


class LogUniform(Section):
    loguniform: tuple[float, float] = Field(description="[low, high], both > 0: equally likely per order of magnitude.")

    @model_validator(mode="after")
    def _ordered(self):
        low, high = self.loguniform
        if not 0 < low < high:
            raise ValueError(f"loguniform: [{low}, {high}]: needs 0 < low < high")
        return self


class IntRange(Section):
    int: tuple[Whole, Whole] = Field(description="[low, high]: a whole number from low to high, both included.")
    log: bool = Field(False, description="Equally likely per order of magnitude (needs low >= 1).")
    step: PositiveInt = Field(1, description="Only low, low + step, low + 2·step, ... (not with log).")

    @model_validator(mode="after")
    def _ordered(self):
        low, high = self.int
        if not low < high:
            raise ValueError(f"int: [{low}, {high}]: low must be below high")
        if self.log and (low < 1 or self.step != 1):
            raise ValueError("int with log: true needs low >= 1 and step 1")
        return self


class Choice(Section):
    choice: list[Any] = Field(min_length=2, description="The values to choose from (numbers, strings, lists, true/false).")


def distribution_kind(value: Any) -> str | None:
    """The tag of a distribution: its one key (in YAML), or its class's (once validated)."""
    keys = value if isinstance(value, dict) else type(value).model_fields if isinstance(value, Section) else {}
    kinds = [key for key in ("uniform", "loguniform", "int", "choice") if key in keys]
    return kinds[0] if len(kinds) == 1 else None


Distribution = Annotated[
    Union[Annotated[Uniform, Tag("uniform")], Annotated[LogUniform, Tag("loguniform")], Annotated[IntRange, Tag("int")],
          Annotated[Choice, Tag("choice")]],
    Discriminator(distribution_kind, custom_error_type="distribution",
                  custom_error_message="expected one of {uniform: [low, high]}, {loguniform: [low, high]}, "
                                       "{int: [low, high]}, {choice: [a, b, ...]}"),
]


class TuneConfig(Section):
    """`plait tune`: a search over the space; `plait train` ignores this section."""

    trials: PositiveInt = Field(20, description="Trials to finish (completed or pruned); failed or killed ones are made up for.")
    timeout: str | float | None = Field(None, description="Stop starting trials after this long (`90m`, `2h`, seconds); null: no limit.")
    sampler: Literal["tpe", "random", "grid"] = Field(
        "tpe", description="How trials pick values: `tpe` (Optuna's Tree-structured Parzen Estimator, learning from earlier "
        "trials), `random`, or `grid` (every combination; `choice` and `int` with small ranges only).")
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median", description="Stop a trial early when its validation metric at an epoch is worse than the median of earlier "
        "trials' at that epoch (`median`), by successive halving (`hyperband`), or never (`none`).")
    startup_trials: int = Field(3, ge=0, description="`median`: trials that run to the end before any is pruned.")
    warmup_epochs: int = Field(1, ge=0, description="`median`: epochs of each trial before it may be pruned.")
    stale_after: str | float = Field(
        "2m", description="A running trial whose worker sent no heartbeat for this long (killed, or its machine gone) is "
        "marked FAIL by the next worker to start a trial, and made up for. Longer than the longest pause in a worker.")
    space: dict[str, Distribution] = Field(
        min_length=1, description="Config path (as `--set` takes it, list items by name) → distribution: `{uniform: [low, "
        "high]}`, `{loguniform: [low, high]}`, `{int: [low, high], log: false, step: 1}` or `{choice: [a, b, ...]}`.")

    @field_validator("timeout", "stale_after")
    @classmethod
    def _duration(cls, value):
        seconds_of(value)
        return value

    @field_validator("space")
    @classmethod
    def _not_tune_itself(cls, space):
        inside = [path for path in space if path.split(".")[0] in ("tune", "name", "tracking")]
        if inside:
            raise ValueError(f"{inside[0]}: trials cannot change `{inside[0].split('.')[0]}`")
        return space

    @model_validator(mode="after")
    def _grid_is_finite(self):
        if self.sampler == "grid":
            endless = [path for path, dist in self.space.items() if isinstance(dist, (Uniform, LogUniform))]
            if endless:
                raise ValueError(f"sampler grid needs `choice` or `int` distributions; {endless[0]} is continuous")
        return self
