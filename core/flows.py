"""What a dossier's change causes besides itself — every effect listed in one place.

A status transition (`core.dossier.Decision`) or a transfer can tell the citizen, alert the desk
and keep the province's one-stop system in step. `transition_effects` is the one table of those
effects (in the style of Netflix Dispatch's `case_status_transition_flow_dispatcher`);
storage/flows.py writes each effect to the outbox in the transition's own transaction, under a
key of its own, and the outbox delivers it like any message (retries, backoff, dead letters in
the panel). The rules that decide *whether* an effect happens are the functions below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.catalog import Catalog, Procedure
from core.dossier import (
    CLOSED,
    NATIONAL_STATUS_CODE,
    Action,
    Actor,
    Decision,
    Status,
    allowed_actions,
)
from core.notices import RATING_REQUEST
from core.sms import SMS_TEXT, status_push


class Audience(StrEnum):
    """Who an effect is for; storage turns each into an outbox row on a channel."""

    CITIZEN = "citizen"  # the dossier's citizen, on the channel they submitted on
    DESK = "desk"  # the desk of the dossier's agency, listed in the panel
    OFFICERS = "officers"  # each officer of the agency linked to the staff Telegram bot
    ONESTOP = "onestop"  # the agency's one-stop information system
    SMS_SUBSCRIBERS = "sms_subscribers"  # phones that asked by SMS for this dossier ("DK <code>")


@dataclass(frozen=True)
class Effect:
    """One thing to send because of a change: to whom, which message, with what values.

    `name` makes the outbox key unique per change ("notice", "rating", ...): the same change
    recorded twice queues each effect once."""

    audience: Audience
    name: str
    template: str
    values: dict[str, Any] = field(default_factory=dict)


class ForwardOn(StrEnum):
    """When an agency's dossiers are sent to its one-stop system (per agency, configured)."""

    ACCEPT = "accept"  # as soon as the desk accepts (tiếp nhận) — the default
    FORWARD = "forward"  # when the desk presses "forward" (chuyển xử lý)


@dataclass(frozen=True)
class FlowRules:
    """The configuration the effect rules need: which agencies have a one-stop system and when
    their dossiers go there. An agency absent here enters dossiers in it by hand."""

    onestop: Mapping[str, ForwardOn] = field(default_factory=dict)

    def forward_on(self, agency_code: str) -> ForwardOn | None:
        return self.onestop.get(agency_code)


NO_ONESTOP = FlowRules()

# Templates of the one-stop effects (the one-stop sender's "messages").
ONESTOP_CREATE = "onestop.create"  # DongBoHoSoMC, first time
ONESTOP_UPDATE = "onestop.update"  # DongBoHoSoMC again (isUpdating) with a progress step
# Desk alerts (templates/messages/alert.toml), shown in the panel's reminders.
ALERT_RESUBMITTED = "alert.resubmitted"
ALERT_WITHDRAWN = "alert.withdrawn"
ALERT_NEW = "alert.new_dossier"  # the staff bot only: the panel's "new" queue lists it already
ALERT_CITIZEN_MESSAGE = "alert.citizen_message"  # the staff bot only: the panel shows the thread
# The quick steps an officer's alert offers as buttons (the bot checks each press again).
ALERT_ACTIONS = (Action.ACCEPT, Action.REQUEST_SUPPLEMENT, Action.REFUSE)

_FORWARD_ACTION = {ForwardOn.ACCEPT: Action.ACCEPT, ForwardOn.FORWARD: Action.FORWARD}


def transition_effects(
    decision: Decision,
    *,
    agency_code: str,
    citizen_reachable: bool,
    forwarded: bool,
    rules: FlowRules,
    sms_subscribed: bool = False,
) -> tuple[Effect, ...]:
    """Everything `decision` causes, in the order it should go out.

    `citizen_reachable`: the citizen has an identity on the dossier's channel; `forwarded`: the
    dossier was sent to the one-stop system before this change; `sms_subscribed`: a phone asked
    by SMS for this dossier's pushes."""
    effects: list[Effect] = []
    if tells_citizen(decision) and citizen_reachable:
        assert decision.notice is not None
        effects.append(
            Effect(Audience.CITIZEN, "notice", decision.notice.key, decision.notice.values)
        )
        if asks_rating(decision):
            values = {"code": decision.after.code}
            effects.append(Effect(Audience.CITIZEN, "rating", RATING_REQUEST, values))
    if tells_citizen(decision) and sms_subscribed:  # the public status, in one SMS
        after = decision.after
        text = status_push(after.code, after.status, after.appointment_date)
        effects.append(Effect(Audience.SMS_SUBSCRIBERS, "sms", SMS_TEXT, {"text": text}))
    alert = desk_alert(decision)
    if alert is not None:
        effects.append(Effect(Audience.DESK, "alert", alert, _summary(decision)))
    phone_alert = officer_alert(decision)
    if phone_alert is not None:
        effects.append(Effect(Audience.OFFICERS, "staffbot", phone_alert,
                              officer_alert_values(decision)))  # fmt: skip
    effects.extend(onestop_effects(decision, agency_code, forwarded, rules))
    return tuple(effects)


def tells_citizen(decision: Decision) -> bool:
    """The citizen is pushed every status, except the steps they took themselves (answered in
    the conversation already)."""
    return decision.notice is not None and decision.command.actor is not Actor.CITIZEN


def asks_rating(decision: Decision) -> bool:
    """A dossier that ended with its result handed over asks how the service went."""
    return decision.after.status is Status.RETURNED


def desk_alert(decision: Decision) -> str | None:
    """What the desk must not miss between its own steps: the papers it asked for arrived, or
    the citizen withdrew a dossier the desk may be working on. New dossiers are the inbox's
    "new" queue itself."""
    if decision.command.actor is not Actor.CITIZEN:
        return None
    match decision.transition.action:
        case Action.RESUBMIT:
            return ALERT_RESUBMITTED
        case Action.WITHDRAW:
            return ALERT_WITHDRAWN
    return None


def officer_alert(decision: Decision) -> str | None:
    """What reaches the officers' phones: every new dossier, and what the panel's desk alert
    says (papers back, a withdrawal)."""
    if decision.command.actor is Actor.CITIZEN and decision.transition.action is Action.SUBMIT:
        return ALERT_NEW
    return desk_alert(decision)


def officer_alert_values(decision: Decision) -> dict[str, Any]:
    """The alert's facts, and the quick steps it offers: those the state machine allows now."""
    after = decision.after
    allowed = set(allowed_actions(after.status, Actor.DESK_OFFICER))
    values = {
        **_summary(decision),
        "at": decision.command.at.isoformat(),
        "actions": [action.value for action in ALERT_ACTIONS if action in allowed],
    }
    if after.appointment_date is not None:
        values["appointment_date"] = after.appointment_date.isoformat()
    return values


def citizen_message_effects(code: str, text: str) -> tuple[Effect, ...]:
    """A citizen wrote in a dossier's thread: the officers' phones hear of it (replying to the
    alert answers in the thread)."""
    values = {"code": code, "text": text[:500]}
    return (Effect(Audience.OFFICERS, "thread", ALERT_CITIZEN_MESSAGE, values),)


def onestop_effects(
    decision: Decision, agency_code: str, forwarded: bool, rules: FlowRules
) -> tuple[Effect, ...]:
    """The one-stop system learns of a dossier when the agency's rule says (accept or forward)
    and of every later change, each change once and in order; a change it reported itself is
    not echoed back. Without a one-stop system nothing is sent: the desk enters the dossier
    there by hand, and is reminded to (core.reminders.forward_due_at)."""
    action = decision.transition.action
    forward_on = rules.forward_on(agency_code)
    if forward_on is None:
        return ()
    values: dict[str, Any] = {"code": decision.after.code, "step": progress_step(decision)}
    if not forwarded:
        if action is _FORWARD_ACTION[forward_on]:
            return (Effect(Audience.ONESTOP, "onestop", ONESTOP_CREATE, values),)
        return ()
    if decision.command.actor is Actor.ONESTOP:
        return ()
    if action is Action.RESUBMIT:
        values["supplement"] = True  # the round the desk asked for came back: DanhSachHoSoBoSung
    return (Effect(Audience.ONESTOP, "onestop", ONESTOP_UPDATE, values),)


def progress_step(decision: Decision) -> dict[str, Any]:
    """A progress entry (CapNhatTienDoHoSoMC: who, when, what, status) as JSON-safe values in
    canonical names; the connector writes them in the system's own field names."""
    before, after = decision.before, decision.after
    return {
        "action": decision.transition.action.value,
        "actor": decision.command.actor.value,
        "at": decision.command.at.isoformat(),
        "note": decision.audit_note,
        "to_status": after.status.value,
        "status": NATIONAL_STATUS_CODE[after.status],
        "appointment_date": after.appointment_date.isoformat() if after.appointment_date else None,
        "old_appointment_date": (
            before.appointment_date.isoformat() if before.appointment_date else None
        ),
    }


def _summary(decision: Decision) -> dict[str, Any]:
    notice = decision.notice
    values: dict[str, Any] = {"code": decision.after.code}
    if notice is not None and "procedure" in notice.values:
        values["procedure"] = notice.values["procedure"]
    return values


def transfer_refusal(
    catalog: Catalog, procedure: Procedure, status: Status, source: str, target: str, reason: str
) -> str | None:
    """Why a dossier may not be handed to `target` (a message key), or None when it may: only
    to another receiving desk of the same procedure, only while open, only with a reason."""
    targets = {a.code for a in catalog.receiving_agencies(procedure)} - {source}
    if target not in targets:
        return "admin.error.transfer_target"
    if status in CLOSED:
        return "admin.error.transfer_closed"
    if not reason.strip():
        return "admin.error.reason_required"
    return None


TRANSFERRED = "notice.transferred"


def transfer_effects(
    code: str, agency: Mapping[str, str], citizen_reachable: bool, sms_subscribed: bool = False
) -> tuple[Effect, ...]:
    """A dossier handed to another desk: the citizen (and the phones subscribed by SMS) learn
    where it went (the code stays)."""
    values = {"code": code, "agency": dict(agency)}
    effects = []
    if citizen_reachable:
        effects.append(Effect(Audience.CITIZEN, "notice", TRANSFERRED, values))
    if sms_subscribed:
        effects.append(Effect(Audience.SMS_SUBSCRIBERS, "sms", TRANSFERRED, values))
    return tuple(effects)
