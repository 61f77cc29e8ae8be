"""Middleware that loads the acting person, and the one place domain errors become Slack replies."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot import coaching
from bot.app.services import Services
from bot.errors import CoachingError, InvalidInput, NotFound
from bot.slack.views import case_id_from_metadata, notice_modal
from storage import logcontext
from storage.models import Case, Person
from storage.queries import person_by_slack_id

log = logging.getLogger("coachloop.handlers")

Listener = TypeVar("Listener", bound=Callable[..., None])


def keeps_ack(listener: Listener) -> Listener:
    """Log, rather than raise, what fails after the listener has acked.

    Bolt runs a listener on its own thread and, when it raises after ack(), replaces the answer
    Slack is waiting for: with a 500 (the person sees a warning on a click that worked) or with
    nothing (a 404, three seconds later). Errors before the ack still reach Bolt, which answers
    500: Slack then keeps a submitted modal open with its own error instead of closing it."""

    @functools.wraps(listener)
    def run(**kwargs: Any) -> None:
        try:
            listener(**kwargs)
        except Exception as exc:
            ack = kwargs.get("ack")
            if ack is None or ack.response is None:
                raise
            log.error("%s failed after its ack: %s", listener.__name__, type(exc).__name__, exc_info=exc)
            tell_it_did_not_go_through(kwargs.get("body"), kwargs.get("client"))

    return cast(Listener, run)


AFTER_ACK_FAILURE = (
    "Sorry, coachloop could not finish that just now. Check whether it happened, and if not, try "
    "again in a minute; if it keeps happening, tell your coachloop admin."
)


def tell_it_did_not_go_through(body: Any, client: WebClient | None) -> None:
    """An ephemeral note to the person whose click or command failed after its ack, where it came from
    a conversation (a Home click has none: the Home shows what is true when next opened)."""
    if not isinstance(body, dict) or client is None:
        return
    user = (body.get("user") or {}).get("id") or body.get("user_id")
    channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
    if not (isinstance(user, str) and isinstance(channel, str)):
        return
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=AFTER_ACK_FAILURE)
    except Exception as exc:  # noqa: BLE001 - the failure is logged above; this note is a courtesy
        log.warning("could not tell the person their action failed: %s", type(exc).__name__)


def register(app: App, services: Services) -> None:
    @app.middleware
    def load_person(context: BoltContext, body: dict[str, Any], next: Callable[[], Any]) -> Any:
        context["person"] = None
        if context.user_id:
            with services.db.read() as session:
                context["person"] = person_by_slack_id(session, context.user_id)
        # Log lines of this request and of its listener (run after the ack, in a copy of this
        # context) carry the case the payload names. Bolt's next() does not nest: set, not bind.
        logcontext.CASE_ID.set(
            action_case_id(body) or case_id_from_metadata((body.get("view") or {}).get("private_metadata"))
        )
        return next()

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        # Payloads hold evaluation comments: log the type of request and the error only.
        log.error("listener failed for %s: %s", body.get("type"), type(error).__name__, exc_info=error)


def tell(
    client: WebClient, body: dict[str, Any], error: CoachingError | str, *, title: str = "coachloop"
) -> None:
    """Show a refusal to the person who acted: ephemerally where they clicked, else in a small modal."""
    text = str(error)
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    user = (body.get("user") or {}).get("id")
    if channel and user:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    elif body.get("trigger_id"):
        client.views_open(trigger_id=body["trigger_id"], view=notice_modal(title, text))
    else:
        log.warning("could not show a refusal: no channel and no trigger")


def case_button(
    services: Services, body: dict[str, Any], client: WebClient, act: Callable[[Session, int], str | None]
) -> None:
    """A button naming a case: run `act` in one unit of work, then tell the person what it says (if anything)
    or why it was refused."""
    case_id = action_case_id(body)
    try:
        if case_id is None:
            raise NotFound("That button does not name a coaching case.")
        with services.db.unit_of_work() as session:
            said = act(session, case_id)
    except CoachingError as exc:
        tell(client, body, exc)
        return
    if said:
        tell(client, body, said)


def open_case_modal(
    services: Services,
    body: dict[str, Any],
    client: WebClient,
    person: Person | None,
    build: Callable[[Session, Case], dict[str, Any]],
    may_act: Callable[[Person | None, Case], None] = coaching.check_may_plan,
) -> None:
    """From a button naming a case: reload it, check the person may act, open the modal `build` makes."""
    case_id = action_case_id(body)
    try:
        with services.db.read() as session:
            if case_id is None:
                raise NotFound("That button does not name a coaching case.")
            case = coaching.load_case(session, case_id)
            may_act(person, case)
            view = build(session, case)
    except CoachingError as exc:
        tell(client, body, exc)
        return
    client.views_open(trigger_id=body["trigger_id"], view=view)


def submit_case_modal(
    ack: Ack,
    view: dict[str, Any],
    title: str,
    record: Callable[[int], object],
    *,
    errors_at: Callable[[dict[str, str]], dict[str, str]] = lambda errors: errors,
) -> None:
    """Run a modal's transition on the case it names: field errors stay in the modal (keyed by the
    block ids it shows, via `errors_at`), refusals replace it."""
    case_id = modal_case_id(view)
    try:
        if case_id is None:
            raise NotFound("This form has lost its coaching case; close it and start again.")
        record(case_id)
    except InvalidInput as exc:
        ack(response_action="errors", errors=errors_at(exc.errors))
        return
    except CoachingError as exc:
        ack(response_action="update", view=notice_modal(title, str(exc)))
        return
    ack()


MAX_ID = 2**31 - 1  # ids past the column's range name no case


def action_case_id(body: dict[str, Any]) -> int | None:
    """The case id a button carries (re-checked against the database by the caller)."""
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else None
    value = action.get("value") if isinstance(action, dict) else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) <= MAX_ID:
        return int(value)
    return None


def modal_case_id(view: dict[str, Any]) -> int | None:
    """The case id a modal carries in its private_metadata (never trusted: the caller reloads it)."""
    case_id = case_id_from_metadata(view.get("private_metadata"))
    return case_id if case_id is not None and 0 < case_id <= MAX_ID else None


def form_values(view: Any) -> dict[str, Any]:
    """`view.state.values` of a submitted modal, or {} when Slack (or anyone) sent something else."""
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    return values if isinstance(values, dict) else {}
