"""`coachloop demo --weeks 8`: eight weeks through the real paths leave figures worth reading."""

from __future__ import annotations

import re

from bot import measures, report
from bot.measures_data import Scope, compute, parse_period
from bot.measures_weekly import weekly_figures
from storage.db import Database
from storage.models import Case
from tests.conftest import HISTORY_END, History


def test_the_history_has_what_leadership_needs_to_see(demo_history: History) -> None:
    db = Database(demo_history.db_url)
    try:
        with db.unit_of_work() as s:
            period = parse_period("last-8-weeks", HISTORY_END)
            rows = {r.scope: r.m for r in report.build(s, period, HISTORY_END)}
            cases = s.query(Case).all()
            weekly = weekly_figures(s, HISTORY_END)
            everyone = compute(s, Scope(), period, HISTORY_END)
    finally:
        db.dispose()
    # Two leaders coach on time, one does not.
    assert rows["Billing"].hit_rate is not None and rows["Billing"].hit_rate >= 0.9
    assert rows["Retentions"].hit_rate is not None and rows["Retentions"].hit_rate >= 0.75
    assert rows["Collections"].hit_rate is not None and rows["Collections"].hit_rate <= 0.5
    assert rows["Collections"].missed >= 3 and rows["Collections"].coached_late >= 3
    # Reviews with outcomes, waivers with reasons, a developmental goal.
    assert everyone.reviews_decided >= 20 and set(everyone.outcomes) == {"yes", "partly", "no"}
    assert everyone.waived == 3 and all(everyone.waived_reasons)
    assert any(c.kind == "developmental" and c.behaviour_key == "development-goal" for c in cases)
    # Coached criteria pass more often afterwards.
    before, after = everyone.change_before, everyone.change_after
    assert before[1] >= 20 and after[1] >= 20 and after[0] / after[1] > before[0] / before[1] + 0.1
    # The charts have something to draw: each team has a hit rate in most of the eight weeks.
    assert len(weekly.weeks) == 8
    for values in weekly.hit_rate.teams.values():
        assert sum(v is not None for v in values) >= 5, values  # most weeks: a score joins a waiting case


def test_home_coach_and_the_digest_show_figures(demo_history: History) -> None:
    said = demo_history.said
    home = said.split("## Dana (leadership) opens App Home")[1].split("## Dana types /coach")[0]
    for team in ("Billing", "Retentions", "Collections"):
        assert re.search(rf"\*{team}\* \(.*\)\n\s+coached in the window \d+% \(\d+ of \d+ decided\)", home)
    assert home.index("*Collections*") < home.index("*Billing*")  # furthest behind first
    coach = said.split("## Dana types /coach")[1].split("## Dana's latest Monday digest")[0]
    assert coach.count("coached in the window") == 3 and "– (0 of 0" not in coach
    digest = said.split("## Dana's latest Monday digest")[1]
    lead = digest.splitlines()[2]
    assert lead.startswith("  *") and all(team in lead for team in ("Billing", "Retentions", "Collections"))
    assert '"digests": 8' in said and '"charts": 8' in said
    assert measures.HOW_COUNTED in home
