"""The numbers that show whether QA turns into improvement: one definition each, used by every surface.

Definitions (a period is [start, end) in UTC):
- scores landed: evaluations that landed in the period.
- cases opened: cases opened in the period.
- hit rate: cases agreed by their deadline / cases whose deadline fell in the period (waived ones left out).
- coached late: cases agreed in the period after their deadline.
- waived: cases waived in the period, with their reasons.
- open and overdue: cases still awaiting a conversation whose deadline has passed (at `now`).
- time to coach: working days from the effective landing day to the day of the conversation, for cases
  agreed in the period (median and 90th percentile).
- acknowledgement rate: of cases agreed in the period, the share the agent acknowledged; median hours to it.
- discussions requested: cases agreed in the period where the agent asked to discuss.
- reviews on time: cases whose action date fell in the period and were reviewed within 2 working days of it,
  over those cases; outcomes counted from the reviews held in the period.
- behaviour change: for each case agreed in the period on a scorecard criterion, the criterion's pass rate in
  the agent's evaluations after the conversation against the last 5 before it (with counts).
- mix: performance and developmental conversations per leader, the share of actions the agent proposed, and
  a flag on leaders who held only one kind in the 8 weeks to `now`.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bot.calendar import WorkCalendar
from bot.case_state import CaseState

REVIEW_GRACE_DAYS = 2
BEFORE_WINDOW = 5
MIX_WEEKS = 8


@dataclass(frozen=True)
class CaseFacts:
    id: int
    team: str
    leader: str
    agent: str
    kind: str
    state: str
    opened_at: datetime
    landed_at: datetime
    due_at: datetime
    agreed_at: datetime | None = None
    acknowledged_at: datetime | None = None
    discussion_requested_at: datetime | None = None
    action_date: date | None = None
    reviewed_at: datetime | None = None
    review_happened: str | None = None
    waived_at: datetime | None = None
    waived_reason: str | None = None
    agent_proposed: bool | None = None
    behaviour_key: str | None = None


@dataclass(frozen=True)
class ScoreFacts:
    """One scorecard item in one evaluation (for behaviour change), or a bare score (key None)."""

    agent: str
    landed_at: datetime
    key: str | None = None
    passed: bool = True
    count: int = 1  # bare scores: how many evaluations landed (from landed_at on, in the same period)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def __contains__(self, at: datetime | None) -> bool:
        return at is not None and self.start <= at < self.end


@dataclass
class BehaviourChange:
    case_id: int
    agent: str
    key: str
    before_passed: int
    before_scored: int
    after_passed: int
    after_scored: int

    @property
    def before_rate(self) -> float | None:
        return self.before_passed / self.before_scored if self.before_scored else None

    @property
    def after_rate(self) -> float | None:
        return self.after_passed / self.after_scored if self.after_scored else None


@dataclass
class Measures:
    scores_landed: int = 0
    cases_opened: int = 0
    due: int = 0
    coached_in_window: int = 0
    coached_late: int = 0
    waived: int = 0
    waived_reasons: Counter[str] = field(default_factory=Counter)
    open_overdue: int = 0
    time_to_coach_median: float | None = None
    time_to_coach_p90: float | None = None
    agreed: int = 0
    acknowledged: int = 0
    ack_hours_median: float | None = None
    discussions: int = 0
    reviews_due: int = 0
    reviews_on_time: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    behaviour_change: list[BehaviourChange] = field(default_factory=list)
    mix: dict[str, Counter[str]] = field(default_factory=dict)
    proposed: int = 0
    one_kind_leaders: list[str] = field(default_factory=list)

    @property
    def hit_rate(self) -> float | None:
        return self.coached_in_window / self.due if self.due else None

    @property
    def ack_rate(self) -> float | None:
        return self.acknowledged / self.agreed if self.agreed else None

    @property
    def review_rate(self) -> float | None:
        return self.reviews_on_time / self.reviews_due if self.reviews_due else None

    @property
    def proposed_share(self) -> float | None:
        return self.proposed / self.agreed if self.agreed else None

    @property
    def change_after(self) -> tuple[int, int]:
        """Passes and evaluations of coached criteria after the conversations, summed."""
        return (
            sum(c.after_passed for c in self.behaviour_change),
            sum(c.after_scored for c in self.behaviour_change),
        )

    @property
    def change_before(self) -> tuple[int, int]:
        return (
            sum(c.before_passed for c in self.behaviour_change),
            sum(c.before_scored for c in self.behaviour_change),
        )


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def compute(
    cases: list[CaseFacts],
    scores: list[ScoreFacts],
    calendars: dict[str, WorkCalendar],
    period: Period,
    now: datetime,
) -> Measures:
    m = Measures()
    m.scores_landed = sum(s.count for s in scores if s.key is None and s.landed_at in period)
    m.cases_opened = sum(1 for c in cases if c.opened_at in period)
    coach_days: list[float] = []
    ack_hours: list[float] = []
    for c in cases:
        cal = calendars[c.team]
        if c.due_at in period and c.waived_at is None:
            m.due += 1
            if c.agreed_at is not None and c.agreed_at <= c.due_at:
                m.coached_in_window += 1
        if c.waived_at in period:
            m.waived += 1
            m.waived_reasons[c.waived_reason or ""] += 1
        if c.state == CaseState.AWAITING and c.due_at < now:
            m.open_overdue += 1
        if c.agreed_at in period:
            assert c.agreed_at is not None
            m.agreed += 1
            if c.agreed_at > c.due_at:
                m.coached_late += 1
            start = cal.effective_landing_day(c.landed_at)
            coach_days.append(max(0, cal.working_days_between(start, cal.local(c.agreed_at).date())))
            if c.acknowledged_at is not None:
                m.acknowledged += 1
                ack_hours.append((c.acknowledged_at - c.agreed_at).total_seconds() / 3600)
            if c.discussion_requested_at is not None:
                m.discussions += 1
            if c.agent_proposed:
                m.proposed += 1
        if (
            c.action_date is not None
            and c.waived_at is None
            and period.start.date() <= c.action_date < period.end.date()
        ):
            m.reviews_due += 1
            if c.reviewed_at is not None:
                grace = cal.add_working_days(c.action_date, REVIEW_GRACE_DAYS)
                if cal.local(c.reviewed_at).date() <= grace:
                    m.reviews_on_time += 1
        if c.reviewed_at in period:
            m.outcomes[c.review_happened or "unknown"] += 1
    m.time_to_coach_median = statistics.median(coach_days) if coach_days else None
    m.time_to_coach_p90 = percentile(coach_days, 90)
    m.ack_hours_median = statistics.median(ack_hours) if ack_hours else None
    m.behaviour_change = behaviour_change(cases, scores, period)
    m.mix, m.one_kind_leaders = mix(cases, period, now)
    return m


def behaviour_change(
    cases: list[CaseFacts], scores: list[ScoreFacts], period: Period
) -> list[BehaviourChange]:
    by_agent: dict[str, list[ScoreFacts]] = defaultdict(list)
    for s in scores:
        if s.key is not None:
            by_agent[s.agent].append(s)
    out = []
    for c in cases:
        if c.agreed_at not in period or not c.behaviour_key or c.behaviour_key == "development-goal":
            continue
        assert c.agreed_at is not None
        seen = sorted((s for s in by_agent[c.agent] if s.key == c.behaviour_key), key=lambda s: s.landed_at)
        before = [s for s in seen if s.landed_at <= c.agreed_at][-BEFORE_WINDOW:]
        after = [s for s in seen if s.landed_at > c.agreed_at]
        out.append(
            BehaviourChange(
                c.id,
                c.agent,
                c.behaviour_key,
                sum(s.passed for s in before),
                len(before),
                sum(s.passed for s in after),
                len(after),
            )
        )
    return out


def mix(cases: list[CaseFacts], period: Period, now: datetime) -> tuple[dict[str, Counter[str]], list[str]]:
    in_period: dict[str, Counter[str]] = defaultdict(Counter)
    recent: dict[str, Counter[str]] = defaultdict(Counter)
    window = Period(now - timedelta(weeks=MIX_WEEKS), now + timedelta(seconds=1))
    for c in cases:
        if c.agreed_at in period:
            in_period[c.leader][c.kind] += 1
        if c.agreed_at in window:
            recent[c.leader][c.kind] += 1
    flagged = sorted(
        leader for leader, kinds in recent.items() if len(kinds) == 1 and sum(kinds.values()) >= 2
    )
    return dict(in_period), flagged


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def ratio(passed: int, scored: int) -> str:
    return "no data" if scored == 0 else f"{passed}/{scored} ({passed / scored:.0%})"
