"""Alert rules as written in sources.yaml: one model per rule, told apart by `rule`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from listener.timeutil import Duration

CONSOLE = "console"


class RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, description="unique; defaults to the rule's type")
    brand: str | None = Field(default=None, description="omit to apply the rule to every brand")
    notify: list[str] = Field(default_factory=lambda: [CONSOLE])
    cooldown: Duration | None = Field(
        default=None, description="quiet time after an alert, per rule and brand/source"
    )
    rule: str

    @property
    def id(self) -> str:
        return self.name or self.rule

    def quiet_for(self) -> timedelta:
        return self.cooldown if self.cooldown is not None else self.default_cooldown

    default_cooldown: timedelta = Field(default=timedelta(hours=1), exclude=True)


class NegativeStreak(RuleBase):
    rule: Literal["negative_streak"]
    count: int = Field(default=3, ge=1, description="negatives in a row that fire the alert")
    source: str | None = Field(default=None, description="count only this source's mentions")
    include_news: bool = Field(
        default=False,
        description="count news sources' mentions too "
        "(reported events, not opinions: left out by default)",
    )
    default_cooldown: timedelta = Field(default=timedelta(0), exclude=True)


class NegativeShareSpike(RuleBase):
    rule: Literal["negative_share_spike"]
    window: Duration = Field(default=timedelta(hours=1), description="the recent window")
    baseline: Duration = Field(default=timedelta(hours=12), description="what came before it")
    min_sample: int = Field(default=10, ge=1, description="scored mentions in the window")
    factor: float = Field(default=2.0, gt=1, description="window share ≥ factor × baseline")
    min_increase: float = Field(
        default=0.15, ge=0, le=1, description="and at least this many points higher"
    )
    aspect: str | None = Field(
        default=None,
        description="only mentions naming this aspect "
        "(price, quality, service, delivery or one of `aspects`)",
    )
    include_news: bool = Field(
        default=False,
        description="count news sources' mentions too "
        "(reported events, not opinions: left out by default)",
    )


class VolumeSpike(RuleBase):
    rule: Literal["volume_spike"]
    window: Duration = Field(default=timedelta(hours=1))
    baseline: Duration = Field(default=timedelta(hours=12))
    min_sample: int = Field(default=10, ge=1, description="mentions in the window")
    factor: float = Field(default=3.0, gt=1, description="window ≥ factor × the usual rate")


class Silence(RuleBase):
    rule: Literal["silence"]
    source: str | None = Field(default=None, description="omit to watch every source")
    baseline: Duration = Field(default=timedelta(days=7), description="history that sets 'usual'")
    factor: float = Field(default=4.0, gt=1, description="silent for factor × the usual gap")
    min_silence: Duration = Field(default=timedelta(hours=6), description="and at least this")
    min_history: int = Field(default=5, ge=1, description="mentions in the baseline to judge")
    default_cooldown: timedelta = Field(default=timedelta(hours=12), exclude=True)


class LowRating(RuleBase):
    rule: Literal["low_rating"]
    max_stars: float = Field(default=2, ge=1, le=5, description="a review at or below this")
    default_cooldown: timedelta = Field(default=timedelta(0), exclude=True)


class RatingDrop(RuleBase):
    rule: Literal["rating_drop"]
    window: Duration = Field(default=timedelta(days=1))
    baseline: Duration = Field(default=timedelta(days=14))
    min_sample: int = Field(default=5, ge=1, description="ratings in the window")
    drop: float = Field(default=0.5, gt=0, description="stars below the baseline average")
    default_cooldown: timedelta = Field(default=timedelta(hours=12), exclude=True)


class HighReachNegative(RuleBase):
    rule: Literal["high_reach_negative"]
    min_reach: int = Field(default=10_000, ge=1, description="followers, points, score...")
    default_cooldown: timedelta = Field(default=timedelta(0), exclude=True)


class Overdue(RuleBase):
    rule: Literal["overdue"]
    default_cooldown: timedelta = Field(default=timedelta(0), exclude=True)


class Report(RuleBase):
    """Not an alarm: the weekly or monthly report's summary, sent once per period at the first
    pass after it closes."""

    rule: Literal["report"]
    period: Literal["week", "month"] = Field(default="week", description="ISO week or month")
    link_base: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="your dashboard's address: the message links to the full report there",
    )
    default_cooldown: timedelta = Field(default=timedelta(0), exclude=True)


RULES = (
    NegativeStreak,
    NegativeShareSpike,
    VolumeSpike,
    Silence,
    LowRating,
    RatingDrop,
    HighReachNegative,
    Overdue,
    Report,
)
RULE_NAMES = tuple(r.model_fields["rule"].annotation.__args__[0] for r in RULES)  # type: ignore
AlertRule = Annotated[Union[RULES], Field(discriminator="rule")]  # type: ignore[valid-type]  # noqa: UP007
