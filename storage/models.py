"""SQLAlchemy 2 typed models: the database is the source of truth."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on every database alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("refusing to store a naive datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


_SORTED_JSON = json.JSONEncoder(sort_keys=True, check_circular=False).encode


class PayloadJSON(TypeDecorator[Any]):
    """A received payload, stored as JSON text with sorted keys: the text its content hash digests
    (`EvaluationInput.raw_json`). That text may be given as it is (a str: taken as JSON text, not
    encoded again); None is SQL NULL."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        return lambda value: value if value is None or isinstance(value, str) else _SORTED_JSON(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Person(Base):
    __tablename__ = "people"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    slack_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    dm_channel: Mapped[str | None] = mapped_column(String(32))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)

    @property
    def display(self) -> str:
        return self.name or self.email


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    leader_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    timezone: Mapped[str] = mapped_column(String(64))
    working_days: Mapped[str] = mapped_column(String(40))
    day_start: Mapped[str] = mapped_column(String(5))
    day_end: Mapped[str] = mapped_column(String(5))
    holiday_country: Mapped[str | None] = mapped_column(String(8))
    holiday_subdivision: Mapped[str | None] = mapped_column(String(16))
    closed_dates: Mapped[list[Any]] = mapped_column(default=list)
    window_days: Mapped[int] = mapped_column(Integer, default=5)
    escalation_channels: Mapped[list[Any]] = mapped_column(default=list)
    coaching_blocks: Mapped[list[Any]] = mapped_column(default=list)
    calibration_size: Mapped[int] = mapped_column(Integer, default=3)

    leader: Mapped[Person] = relationship(foreign_keys=[leader_id], lazy="joined")
    agents: Mapped[list[Person]] = relationship(secondary="team_agents", order_by="Person.email")
    escalation_people: Mapped[list[Person]] = relationship(
        secondary="team_escalations", order_by="Person.email"
    )


class TeamAgent(Base):
    __tablename__ = "team_agents"
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True, unique=True)


class TeamEscalation(Base):
    __tablename__ = "team_escalations"
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # An agent's recent scores and a period's scores, without reading the agent's whole history.
        Index("ix_evaluations_agent_landed", "agent_id", "landed_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(200))
    agent_email: Mapped[str] = mapped_column(String(320), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    evaluator_email: Mapped[str | None] = mapped_column(String(320))
    evaluator_name: Mapped[str | None] = mapped_column(String(200))
    scorecard_id: Mapped[str | None] = mapped_column(String(200))
    scorecard_name: Mapped[str | None] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    landed_at: Mapped[datetime]
    contact_id: Mapped[str | None] = mapped_column(String(200))
    contact_channel: Mapped[str | None] = mapped_column(String(40))
    contact_started_at: Mapped[datetime | None]
    contact_url: Mapped[str | None] = mapped_column(String(2000))
    raw: Mapped[dict[str, Any]] = mapped_column(PayloadJSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # The QA platform's own version time (evaluation v1 `updated_at`): an older version changes nothing.
    source_updated_at: Mapped[datetime | None]
    # Set when an org import named the agent after the score was kept: the window starts then.
    window_from: Mapped[datetime | None]
    intake_status: Mapped[str] = mapped_column(String(30))
    received_at: Mapped[datetime]
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)

    items: Mapped[list[EvaluationItem]] = relationship(
        order_by="EvaluationItem.position", cascade="all, delete-orphan", lazy="selectin"
    )
    agent: Mapped[Person | None] = relationship(foreign_keys=[agent_id])

    @property
    def has_shortfall(self) -> bool:
        return self.score < self.max_score or any(i.missed for i in self.items)


class EvaluationItem(Base):
    __tablename__ = "evaluation_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(500))
    category: Mapped[str | None] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str | None] = mapped_column(Text)
    at_seconds: Mapped[int | None] = mapped_column(Integer)
    good_looks_like: Mapped[str | None] = mapped_column(Text)

    @property
    def missed(self) -> bool:
        return self.score < self.max_score


AWAITING_ONLY = "state = 'awaiting_conversation'"


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        # At most one case per agent awaits a conversation.
        Index(
            "uq_cases_one_awaiting_per_agent",
            "agent_id",
            unique=True,
            sqlite_where=text(AWAITING_ONLY),
            postgresql_where=text(AWAITING_ONLY),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    leader_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(30), index=True)
    opened_at: Mapped[datetime]
    due_at: Mapped[datetime]
    breached_at: Mapped[datetime | None]
    suggested_key: Mapped[str | None] = mapped_column(String(200))
    behaviour_key: Mapped[str | None] = mapped_column(String(200))
    behaviour_name: Mapped[str | None] = mapped_column(String(500))
    example: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(Text)
    action_date: Mapped[date | None] = mapped_column(Date)
    review_method: Mapped[str | None] = mapped_column(String(40))
    agent_proposed: Mapped[bool | None] = mapped_column(Boolean)
    notes: Mapped[str | None] = mapped_column(Text)
    agreed_at: Mapped[datetime | None]
    agreed_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    acknowledged_at: Mapped[datetime | None]
    discussion_requested_at: Mapped[datetime | None]
    reviewed_at: Mapped[datetime | None]
    review_happened: Mapped[str | None] = mapped_column(String(10))
    review_worked: Mapped[str | None] = mapped_column(Text)
    review_next: Mapped[str | None] = mapped_column(String(20))
    waived_reason: Mapped[str | None] = mapped_column(Text)
    waived_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    previous_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    development_goal_id: Mapped[int | None] = mapped_column(ForeignKey("development_goals.id"), index=True)
    # Set when a follow-on review opened the case: its window starts then, whatever its scores.
    window_from: Mapped[datetime | None]
    # Bumped at each hand-over: the holder's DM has a dedupe key of its own.
    leader_dm_version: Mapped[int] = mapped_column(Integer, default=0)

    agent: Mapped[Person] = relationship(foreign_keys=[agent_id], lazy="joined")
    leader: Mapped[Person] = relationship(foreign_keys=[leader_id], lazy="joined")
    team: Mapped[Team] = relationship(lazy="joined")
    evaluations: Mapped[list[Evaluation]] = relationship(
        foreign_keys=[Evaluation.case_id], order_by="Evaluation.landed_at", lazy="selectin"
    )
    handovers: Mapped[list[CaseHandover]] = relationship(order_by="CaseHandover.id", lazy="selectin")

    @property
    def late(self) -> bool:
        return self.breached_at is not None or (self.agreed_at is not None and self.agreed_at > self.due_at)


class CaseHandover(Base):
    """Who held a case before whom, why, and who decided (shown on the case; append-only)."""

    __tablename__ = "case_handovers"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime]
    from_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    to_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(200))

    from_person: Mapped[Person] = relationship(foreign_keys=[from_id], lazy="joined")
    to_person: Mapped[Person] = relationship(foreign_keys=[to_id], lazy="joined")


class LeaderCover(Base):
    """A leader's queue held by another team leader for a period (holiday cover)."""

    __tablename__ = "leader_covers"
    id: Mapped[int] = mapped_column(primary_key=True)
    leader_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    cover_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    starts_at: Mapped[datetime]
    until: Mapped[date] = mapped_column(Date)
    by: Mapped[str] = mapped_column(String(200))
    ended_at: Mapped[datetime | None]

    leader: Mapped[Person] = relationship(foreign_keys=[leader_id], lazy="joined")
    cover: Mapped[Person] = relationship(foreign_keys=[cover_id], lazy="joined")


class Timer(Base):
    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_due", "status", "due_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12), default="pending")
    fired_at: Mapped[datetime | None]


UPDATES_ONLY = "updates_key IS NOT NULL"  # most rows are messages of their own, not updates of one
PENDING_HOMES_ONLY = "status = 'pending' AND kind = 'home'"


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "due_at"),
        # What an intake asks for each batch: is an update of this message, or a re-publish of this
        # person's Home, already pending? Answered from the pending rows alone, however long the backlog.
        Index(
            "ix_outbox_updates",
            "updates_key",
            "status",
            sqlite_where=text(UPDATES_ONLY),
            postgresql_where=text(UPDATES_ONLY),
        ),
        Index(
            "ix_outbox_pending_homes",
            "person_id",
            sqlite_where=text(PENDING_HOMES_ONLY),
            postgresql_where=text(PENDING_HOMES_ONLY),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    channel: Mapped[str | None] = mapped_column(String(100))
    updates_key: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(32))  # the sweeper holding the lease
    last_error: Mapped[str | None] = mapped_column(String(500))
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    request_id: Mapped[str | None] = mapped_column(String(64))  # the HTTP request that queued it (for logs)

    person: Mapped[Person | None] = relationship(lazy="joined")


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    action: Mapped[str] = mapped_column(String(60))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class PollCursor(Base):
    """How far a poller has read one source (e.g. a Zendesk QA workspace), and its health.

    `position` only moves after every review up to it is committed; `lease_until` lets one
    process at a time poll a scope, so replicas neither skip nor double a window."""

    __tablename__ = "poll_cursors"
    __table_args__ = (UniqueConstraint("connector", "scope"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(200))
    position: Mapped[datetime | None]
    next_poll_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))


class TeamQALead(Base):
    """A QA lead or evaluator who advises this team's leaders (org-wide leads are listed on every team)."""

    __tablename__ = "team_qa_leads"
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)


class LeaderBlocks(Base):
    """A leader's own weekly coaching blocks: from the org file, and as the leader edited them on Home."""

    __tablename__ = "leader_coaching_blocks"
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    org_blocks: Mapped[list[Any] | None] = mapped_column(JSON)
    home_blocks: Mapped[list[Any] | None] = mapped_column(JSON)
    home_updated_at: Mapped[datetime | None]


class CoachingBlockRun(Base):
    """One occurrence of a leader's coaching block: who was waiting at its start, and how it ended."""

    __tablename__ = "coaching_block_runs"
    __table_args__ = (UniqueConstraint("leader_id", "starts_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    leader_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    waiting: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default="open")
    settled_at: Mapped[datetime | None]


class CaseAdvice(Base):
    """What a QA lead adds to a case: evidence, a suggested focus and its reason, or a note to the leader."""

    __tablename__ = "case_advice"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    kind: Mapped[str] = mapped_column(String(12))
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(2000))
    behaviour_key: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20), default="button")
    created_at: Mapped[datetime]

    author: Mapped[Person] = relationship(lazy="joined")


class CalibrationSample(Base):
    """An agreed plan drawn for the week's calibration of its team."""

    __tablename__ = "calibration_samples"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    week_of: Mapped[date] = mapped_column(Date, index=True)
    sampled_at: Mapped[datetime]

    case: Mapped[Case] = relationship(lazy="joined")
    ratings: Mapped[list[CalibrationRating]] = relationship(
        order_by="CalibrationRating.id", lazy="selectin", back_populates="sample"
    )


class CalibrationRating(Base):
    """One rater's reading of a sampled plan against the structure."""

    __tablename__ = "calibration_ratings"
    __table_args__ = (UniqueConstraint("sample_id", "rater_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("calibration_samples.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    one_behaviour: Mapped[bool] = mapped_column(Boolean)
    specific_example: Mapped[bool] = mapped_column(Boolean)
    dated_action: Mapped[bool] = mapped_column(Boolean)
    agents_action: Mapped[bool] = mapped_column(Boolean)
    suggestion: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime]

    sample: Mapped[CalibrationSample] = relationship(back_populates="ratings")


class DevelopmentGoal(Base):
    """An agent-led development goal; it may span several conversations (cases point at it)."""

    __tablename__ = "development_goals"
    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    wording: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="open")
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class DevelopmentPrep(Base):
    """The agent's own answers before a developmental conversation."""

    __tablename__ = "development_prep"
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    asked_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    in_12_months: Mapped[str | None] = mapped_column(Text)
    work_on_next: Mapped[str | None] = mapped_column(Text)
    would_help: Mapped[str | None] = mapped_column(Text)
