"""The numbers that show whether QA turns into improvement: one definition each, used by every surface.

The definitions, in the words every surface shows them (the report, App Home, `coachloop report
--definitions`), are `DEFINITIONS` below; `compute` is their only implementation.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from bot.calendar import WorkCalendar
from bot.case_state import CaseState

REVIEW_GRACE_DAYS = 2
BEFORE_WINDOW = 5
MIX_WEEKS = 8


@dataclass(frozen=True)
class Definition:
    key: str
    term: str
    text: str


DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        "period",
        "Period",
        "The weeks the figures cover. Weeks start on Monday; times are compared in UTC.",
    ),
    Definition(
        "decided",
        "Decided",
        "A case is decided the first time one of these happens: the leader holds the conversation, "
        "the case is waived, or its deadline passes without a conversation. It counts in the period "
        "where that happened, once. A case still inside its window is not decided yet.",
    ),
    Definition(
        "hit_rate",
        "Coached in the window (hit rate)",
        "Cases whose conversation was held by the deadline, divided by the cases decided in the period. "
        "Waived cases are left out and shown apart, so the rate shows a figure as soon as one case is "
        "coached in time.",
    ),
    Definition(
        "missed",
        "Missed the window",
        "Cases whose deadline passed in the period without a conversation, whether they were coached "
        "late afterwards or are still open.",
    ),
    Definition(
        "coached_late",
        "Coached late",
        "Conversations held in the period after the case's deadline.",
    ),
    Definition(
        "waived",
        "Waived",
        "Cases waived in the period, with their reasons. A case waived before its deadline is left out "
        "of the hit rate; one waived after it had already missed its window stays counted as missed.",
    ),
    Definition(
        "open_overdue",
        "Overdue now",
        "Cases still waiting for a conversation whose deadline has passed, at the moment the figures "
        "were made.",
    ),
    Definition(
        "time_to_coach",
        "Days to coach",
        "Working days from the day the score counted as landed to the day of the conversation, for "
        "conversations held in the period: the median and the 90th percentile.",
    ),
    Definition(
        "ack_rate",
        "Acknowledged",
        "Of the conversations held in the period, the share whose agreed action the agent acknowledged, "
        "and the median hours it took.",
    ),
    Definition(
        "discussions",
        "Discussions",
        "Conversations held in the period where the agent asked to discuss the action.",
    ),
    Definition(
        "review_rate",
        "Reviews on time",
        f"A follow-up review is decided when it is held, or when {REVIEW_GRACE_DAYS} working days after "
        f"the action's date have passed without it. Reviews on time divided by reviews decided in the "
        f"period; waived cases have no review.",
    ),
    Definition(
        "outcomes",
        "Review outcomes",
        "For reviews held in the period: whether the agreed action happened (yes, partly, no).",
    ),
    Definition(
        "behaviour_change",
        "Behaviour change",
        f"For each conversation held in the period on a scorecard criterion: how often the agent passed "
        f"that criterion in the last {BEFORE_WINDOW} evaluations before it, against the evaluations since. "
        f"Passed means full marks on the criterion. Shown as passes out of evaluations, before and after.",
    ),
    Definition(
        "proposed",
        "Agent-proposed",
        "The share of conversations held in the period where the agent proposed the action.",
    ),
    Definition(
        "mix",
        "Conversation mix",
        f"Performance and developmental conversations held in the period. A leader who held only one "
        f"kind (at least two conversations) in the last {MIX_WEEKS} weeks is flagged.",
    ),
    Definition(
        "squeezed_out",
        "Blocks squeezed out (per leader)",
        "The leader's weekly coaching blocks that ended in the period; a block is squeezed out when "
        "conversations were waiting at its start and none was logged in it (a plan agreed or a review "
        "held). Shown as squeezed out of blocks.",
    ),
    Definition(
        "structure_share",
        "Plans meeting the structure (per leader)",
        "Of the leader's plans held in the period and rated in calibration, the share every rater found "
        "to have all four parts: one behaviour; a specific example (contact, moment, what happened); an "
        "action with a date and a review method; the action was the agent's.",
    ),
    Definition(
        "rater_agreement",
        "Rater agreement (per leader)",
        "Over those plans rated by two or more raters, every pair of raters and every one of the four "
        "parts: the share of comparisons where both gave the same answer.",
    ),
    Definition(
        "leader_proposed",
        "Actions the agent proposed (per leader)",
        "Of the leader's conversations held in the period, the share whose action the agent proposed: "
        "coaching, not telling.",
    ),
)


def definition(key: str) -> Definition:
    return next(d for d in DEFINITIONS if d.key == key)


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
    decided: int = 0  # coached in the window + missed (waivers apart)
    coached_in_window: int = 0
    missed: int = 0
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
    reviews_decided: int = 0
    reviews_on_time: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    behaviour_change: list[BehaviourChange] = field(default_factory=list)
    mix: dict[str, Counter[str]] = field(default_factory=dict)
    proposed: int = 0
    one_kind_leaders: list[str] = field(default_factory=list)

    @property
    def hit_rate(self) -> float | None:
        return self.coached_in_window / self.decided if self.decided else None

    @property
    def ack_rate(self) -> float | None:
        return self.acknowledged / self.agreed if self.agreed else None

    @property
    def review_rate(self) -> float | None:
        return self.reviews_on_time / self.reviews_decided if self.reviews_decided else None

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
        decided = decision(c, now)
        if decided is not None and decided[1] in period:
            if decided[0] == IN_WINDOW:
                m.coached_in_window += 1
            elif decided[0] == MISSED:
                m.missed += 1
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
        reviewed = review_decision(c, cal, now)
        if reviewed is not None and reviewed[1] in period:
            m.reviews_decided += 1
            m.reviews_on_time += reviewed[0]
        if c.reviewed_at in period:
            m.outcomes[c.review_happened or "unknown"] += 1
    m.decided = m.coached_in_window + m.missed
    m.time_to_coach_median = statistics.median(coach_days) if coach_days else None
    m.time_to_coach_p90 = percentile(coach_days, 90)
    m.ack_hours_median = statistics.median(ack_hours) if ack_hours else None
    m.behaviour_change = behaviour_change(cases, scores, period)
    m.mix, m.one_kind_leaders = mix(cases, period, now)
    return m


IN_WINDOW, MISSED, WAIVED = "in_window", "missed", "waived"


def decision(c: CaseFacts, now: datetime) -> tuple[str, datetime] | None:
    """How and when a case was first decided (see DEFINITIONS), or None while it is inside its window."""
    if c.agreed_at is not None and c.agreed_at <= c.due_at:
        return IN_WINDOW, c.agreed_at
    if c.waived_at is not None and c.waived_at <= c.due_at:
        return WAIVED, c.waived_at
    if c.due_at <= now:
        return MISSED, c.due_at
    return None


def review_decision(c: CaseFacts, cal: WorkCalendar, now: datetime) -> tuple[bool, datetime] | None:
    """(on time?, when decided) for a case's follow-up review, or None while it may still be held on time."""
    if c.action_date is None or c.waived_at is not None:
        return None
    last_day = cal.add_working_days(c.action_date, REVIEW_GRACE_DAYS)
    closes = cal.at_local(last_day + timedelta(days=1), time(0))
    if c.reviewed_at is not None and c.reviewed_at < closes:
        return True, c.reviewed_at
    if closes <= now:
        return False, closes
    return None


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


HOW_COUNTED = (
    f"{definition('decided').text.split('. It counts')[0]}. "
    "Coached in the window = conversations held by the deadline ÷ cases decided, waivers apart; "
    "reviews the same way. `coachloop report --definitions` lists every figure."
)


def figures_text(m: Measures) -> str:
    """One line of a scope's figures, the same on Home, /coach and the digest."""
    return (
        f"coached in the window {pct(m.hit_rate)} ({m.coached_in_window} of {m.decided} decided) · "
        f"late {m.coached_late} · overdue now {m.open_overdue} · waived {m.waived} · "
        f"reviews on time {pct(m.review_rate)} ({m.reviews_on_time} of {m.reviews_decided}) · "
        f"coached behaviours passed {ratio(*m.change_before)} before → {ratio(*m.change_after)} after"
    )


def change_phrase(name: str, m: Measures, previous: Measures) -> tuple[float, str]:
    """'Billing 62% → 81%, 2 missed the window' and how much it matters (bigger first)."""
    missed = f", {m.missed} missed the window" if m.missed else ""
    if m.hit_rate is None:
        return -1.0, f"{name} nothing decided yet"
    if previous.hit_rate is None:
        return 100.0 + m.missed, f"{name} {pct(m.hit_rate)}{missed}"
    moved = round(m.hit_rate * 100) - round(previous.hit_rate * 100)
    if moved == 0:
        return float(m.missed), f"{name} no change ({pct(m.hit_rate)}){missed}"
    return abs(moved) + m.missed, f"{name} {pct(previous.hit_rate)} → {pct(m.hit_rate)}{missed}"


def change_lead(changes: list[tuple[str, Measures, Measures]]) -> str:
    """The digest's first line: each team's hit rate change, the change that matters most first."""
    phrases = sorted((change_phrase(*c) for c in changes), key=lambda p: -p[0])
    return "; ".join(text for _, text in phrases) or "No teams yet"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def ratio(passed: int, scored: int) -> str:
    return "no data" if scored == 0 else f"{passed}/{scored} ({passed / scored:.0%})"


# --- the operating model around the conversation (per leader; see the last four DEFINITIONS) --------

STRUCTURE = ("one_behaviour", "specific_example", "dated_action", "agents_action")


@dataclass(frozen=True)
class BlockFacts:
    leader: str
    ends_at: datetime
    status: str


@dataclass(frozen=True)
class RatingFacts:
    case_id: int
    leader: str
    agreed_at: datetime
    rater: str
    met: frozenset[str]


@dataclass
class LeaderPractice:
    leader: str
    blocks: int = 0
    squeezed: int = 0
    plans_rated: int = 0
    plans_meeting: int = 0
    comparisons: int = 0
    agreements: int = 0
    agreed: int = 0
    proposed: int = 0

    @property
    def structure_share(self) -> float | None:
        return self.plans_meeting / self.plans_rated if self.plans_rated else None

    @property
    def rater_agreement(self) -> float | None:
        return self.agreements / self.comparisons if self.comparisons else None

    @property
    def proposed_share(self) -> float | None:
        return self.proposed / self.agreed if self.agreed else None


def leader_practice(
    cases: list[CaseFacts], blocks: list[BlockFacts], ratings: list[RatingFacts], period: Period
) -> dict[str, LeaderPractice]:
    out: dict[str, LeaderPractice] = {}

    def of(leader: str) -> LeaderPractice:
        return out.setdefault(leader, LeaderPractice(leader))

    for block in blocks:
        if block.ends_at in period and block.status != "open":
            lp = of(block.leader)
            lp.blocks += 1
            lp.squeezed += block.status == "squeezed"
    for c in cases:
        if c.agreed_at in period:
            lp = of(c.leader)
            lp.agreed += 1
            lp.proposed += bool(c.agent_proposed)
    by_plan: dict[int, list[RatingFacts]] = defaultdict(list)
    for r in ratings:
        if r.agreed_at in period:
            by_plan[r.case_id].append(r)
    for plan in by_plan.values():
        lp = of(plan[0].leader)
        lp.plans_rated += 1
        lp.plans_meeting += all(r.met >= set(STRUCTURE) for r in plan)
        for i, first in enumerate(plan):
            for second in plan[i + 1 :]:
                for part in STRUCTURE:
                    lp.comparisons += 1
                    lp.agreements += (part in first.met) == (part in second.met)
    return dict(sorted(out.items()))


def practice_line(lp: LeaderPractice) -> str:
    """One leader's practice figures in a line (Home, digest, report)."""
    return (
        f"blocks squeezed out {lp.squeezed}/{lp.blocks} · "
        f"plans meeting the structure {pct(lp.structure_share)} ({lp.plans_meeting}/{lp.plans_rated}) · "
        f"rater agreement {pct(lp.rater_agreement)} · "
        f"actions the agent proposed {pct(lp.proposed_share)} ({lp.proposed}/{lp.agreed})"
    )
