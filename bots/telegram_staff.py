"""Staff bot on Telegram (python-telegram-bot): desk officers alerted and answering from their
phone, through the same desk actions as the panel (`storage.desk_actions`).

`POST /webhook/telegram/staff` checks the bot's own secret header and the replay guard, then the
update runs through the application's handlers. A Telegram user is an officer only once bound
to a staff account by a one-time deep link (`storage.staff_bot`); anyone else gets one line.
Every button press is looked up by its key (made for that officer) and judged again by
`core.staff` and the state machine: a stale button changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from core.channels import Channel
from core.dossier import Action, Actor, Command, DossierRuleError, MissingItem, decide
from core.messages import render
from core.staff import Permission, StaffMember, can
from storage import desk_actions
from storage.db import session_scope
from storage.dossiers import facts_of, find_by_code
from storage.inbound import first_delivery
from storage.inbox import queue_counts
from storage.models import Citizen, Dossier, OutboxMessage, StaffTelegram
from storage.staff import StaffError, member
from storage.staff_bot import (
    linked_staff,
    new_button,
    pressed,
    redeem_link,
    unlink,
    wait_for_text,
)

log = logging.getLogger(__name__)
LANG = "vi"
CHANNEL = Channel.STAFF
COMMANDS = ("hangdoi", "denhan", "tim", "help", "logout")
MAX_TEXT = 1000  # a refusal's reason (the panel's bound)


def make_application(token: str, api_base: str) -> Application[Any, Any, Any, Any, Any, Any]:
    """The bot without an updater: updates arrive at our webhook, not by polling."""
    base = api_base.rstrip("/")
    return (
        Application.builder()
        .token(token)
        .base_url(f"{base}/bot")
        .base_file_url(f"{base}/file/bot")
        .updater(None)
        .build()
    )


@dataclass
class Officer:
    """The linked account behind an update, as it is now (role and agency read fresh)."""

    member: StaffMember
    link: StaffTelegram


def _now() -> datetime:
    return datetime.now(UTC)


def install_handlers(
    application: Application[Any, Any, Any, Any, Any, Any],
    runtime: Any,
    wake: Callable[[], None] = lambda: None,
) -> None:
    """The bot's handlers; `runtime` is the web app's Runtime (database, catalog, calendar);
    `wake` is called after an action wrote outbox messages (the embedded delivery sends them)."""

    async def db(work: Callable[[], Any]) -> Any:
        return await asyncio.to_thread(work)

    def officer_of(update: Update) -> Officer | None:
        user = update.effective_user
        if user is None:
            return None
        with Session(runtime.engine) as session:
            found = linked_staff(session, user.id)
        return Officer(member(found[0]), found[1]) if found else None

    async def say(update: Update, key: str, **values: Any) -> None:
        chat = update.effective_chat
        if chat is not None:
            await application.bot.send_message(chat.id, render(key, LANG, **values))

    Handler = Callable[[Update, Officer, ContextTypes.DEFAULT_TYPE], Awaitable[None]]

    def officers_only(
        handler: Handler,
    ) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
        """Runs `handler` for a linked officer in a private chat; anyone else: one line."""

        async def run(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            if update.callback_query is not None:
                await update.callback_query.answer()
            chat = update.effective_chat
            if chat is None:
                return
            if chat.type != "private":
                await say(update, "staffbot.private_only")
                return
            officer = await db(lambda: officer_of(update))
            if officer is None:
                await say(update, "staffbot.not_linked")
                return
            await handler(update, officer, context)

        return run

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None or chat.type != "private":
            await say(update, "staffbot.private_only")
            return
        token = (context.args or [""])[0]
        if not token:
            linked = await db(lambda: officer_of(update))
            await say(update, "staffbot.help" if linked else "staffbot.not_linked")
            return

        def link() -> tuple[str, str] | None:
            with session_scope(runtime.engine) as session:
                account = redeem_link(session, token, user.id, chat.id, _now())
                if account is None:
                    return None
                agency = runtime.catalog.agencies.get(account.agency_code)
                return account.username, agency.name.vi if agency else account.agency_code

        linked_as = await db(link)
        if linked_as is None:
            await say(update, "staffbot.link_invalid")
            return
        await say(update, "staffbot.linked", username=linked_as[0], agency=linked_as[1])

    async def logout(update: Update, officer: Officer, context: Any) -> None:
        def work() -> None:
            with session_scope(runtime.engine) as session:
                unlink(session, officer.member.id)

        await db(work)
        await say(update, "staffbot.logged_out")

    async def help_(update: Update, officer: Officer, context: Any) -> None:
        await say(update, "staffbot.help")

    def counts(officer: Officer) -> dict[str, int]:
        with Session(runtime.reader) as session:
            found, _ = queue_counts(session, officer.member.agency_code, runtime.calendar, _now())
        return found

    async def queues(update: Update, officer: Officer, context: Any) -> None:
        if not can(officer.member, Permission.VIEW_DOSSIERS, officer.member.agency_code):
            await say(update, "staffbot.forbidden")
            return
        found = await db(lambda: counts(officer))
        lines = "\n".join(
            render(
                "staffbot.queue_line", LANG, name=render(f"admin.queue.{name}", LANG), count=number
            )
            for name, number in found.items()
        )
        await say(update, "staffbot.queues", lines=lines)

    async def due(update: Update, officer: Officer, context: Any) -> None:
        if not can(officer.member, Permission.VIEW_DOSSIERS, officer.member.agency_code):
            await say(update, "staffbot.forbidden")
            return
        found = await db(lambda: counts(officer))
        await say(update, "staffbot.due", due=found.get("due_soon", 0),
                  overdue=found.get("overdue", 0))  # fmt: skip

    async def search(update: Update, officer: Officer, context: ContextTypes.DEFAULT_TYPE) -> None:
        wanted = " ".join(context.args or [])[:100].strip()
        agency = officer.member.agency_code

        def find() -> list[str]:
            if not can(officer.member, Permission.VIEW_DOSSIERS, agency) or not wanted:
                return []
            with Session(runtime.engine) as session:
                found = find_by_code(session, wanted)
                rows = [found] if found is not None else []
                digits = "".join(ch for ch in wanted if ch.isdigit())
                if not rows and len(digits) >= 9:  # a phone: the last nine digits match
                    rows = list(session.execute(
                        select(Dossier).join(Citizen, col(Citizen.id) == col(Dossier.citizen_id))
                        .where(col(Citizen.phone).like(f"%{digits[-9:]}"),
                               col(Dossier.agency_code) == agency)
                        .order_by(col(Dossier.id).desc()).limit(5)
                    ).scalars())  # fmt: skip
                return [_line(runtime, d) for d in rows if d.agency_code == agency]

        lines = await db(find)
        if not lines:
            await say(update, "staffbot.not_found")
            return
        await application.bot.send_message(update.effective_chat.id, "\n".join(lines))  # type: ignore[union-attr]

    async def button(update: Update, officer: Officer, context: Any) -> None:
        query = update.callback_query
        assert query is not None
        key = (query.data or "")[:64]

        def lookup() -> tuple[int, str, str] | None:
            with Session(runtime.engine) as session:
                found = pressed(session, key, officer.member.id)
                if found is None:
                    return None
                dossier = session.get(Dossier, found.dossier_id)
                code = dossier.code if dossier else ""
                return found.dossier_id, found.action, code

        found = await db(lookup)
        if found is None:
            await say(update, "staffbot.stale")
            return
        dossier_id, action, code = found
        try:
            match action:
                case Action.ACCEPT.value:
                    await offer_accept(update, officer, dossier_id, code)
                case "confirm_accept":
                    decision = await db(lambda: desk_actions.accept(
                        runtime, dossier_id, officer.member, _now()))  # fmt: skip
                    await say(update, "staffbot.done_accept", code=code,
                              date=decision.after.appointment_date)  # fmt: skip
                case Action.REFUSE.value:
                    await ask_reason(update, officer, dossier_id, action, code)
                case Action.REQUEST_SUPPLEMENT.value:
                    await pick_components(update, officer, dossier_id, code)
                case "supplement_done" | "confirm_supplement":
                    await supplement_step(update, officer, dossier_id, action, code)
                case _ if action.startswith("toggle:"):
                    await toggle(update, officer, dossier_id, action.removeprefix("toggle:"))
                case _:
                    await say(update, "staffbot.stale")
        except DossierRuleError as error:
            await application.bot.send_message(query.message.chat.id, error.message(LANG))  # type: ignore[union-attr]
        except desk_actions.NotPermitted:
            await say(update, "staffbot.forbidden")
        else:
            wake()

    async def offer_accept(update: Update, officer: Officer, dossier_id: int, code: str) -> None:
        """The appointment the calendar would give now, to confirm (nothing changes yet)."""

        def preview() -> tuple[Any, str]:
            with session_scope(runtime.engine) as session:
                dossier = session.get(Dossier, dossier_id)
                assert dossier is not None
                if not can(officer.member, Permission.ACT_ON_DOSSIERS, dossier.agency_code):
                    raise desk_actions.NotPermitted
                procedure = runtime.catalog.procedure(dossier.procedure_code)
                decision = decide(facts_of(dossier),
                                  Command(Action.ACCEPT, Actor.DESK_OFFICER, _now()),
                                  procedure=procedure, calendar=runtime.calendar)  # fmt: skip
                key = new_button(session, officer.member.id, dossier_id, "confirm_accept", _now())
                return decision.after.appointment_date, key

        day, key = await db(preview)
        markup = InlineKeyboardMarkup(
            [[InlineKeyboardButton(render("staffbot.button.confirm", LANG), callback_data=key)]]
        )
        await application.bot.send_message(
            update.effective_chat.id,  # type: ignore[union-attr]
            render("staffbot.confirm_accept", LANG, code=code, date=day),
            reply_markup=markup,
        )

    async def ask_reason(
        update: Update, officer: Officer, dossier_id: int, action: str, code: str
    ) -> None:
        """The next text is the refusal's reason."""

        def work() -> None:
            with session_scope(runtime.engine) as session:
                link = session.get(StaffTelegram, officer.member.id)
                if link is not None:
                    wait_for_text(session, link, {"dossier_id": dossier_id, "action": action})

        await db(work)
        await say(update, "staffbot.ask_refusal", code=code)

    def set_waiting(officer: Officer, what: dict[str, Any] | None) -> None:
        with session_scope(runtime.engine) as session:
            link = session.get(StaffTelegram, officer.member.id)
            if link is not None:
                wait_for_text(session, link, what)
        officer.link.waiting = what

    def picker(dossier_id: int, waiting: dict[str, Any]) -> InlineKeyboardMarkup:
        """One toggle per paper (✓ when chosen), then "Xong"."""
        with Session(runtime.engine) as session:
            dossier = session.get(Dossier, dossier_id)
            assert dossier is not None
            procedure = runtime.catalog.procedure(dossier.procedure_code)
        chosen = set(waiting["chosen"])
        rows = [[InlineKeyboardButton(("✓ " if c.code in chosen else "") + c.name.vi,
                                      callback_data=waiting["keys"][c.code])]
                for c in procedure.components if c.code in waiting["keys"]]  # fmt: skip
        done = render("staffbot.button.done", LANG)
        rows.append([InlineKeyboardButton(done, callback_data=waiting["done"])])
        return InlineKeyboardMarkup(rows)

    async def pick_components(update: Update, officer: Officer, dossier_id: int, code: str) -> None:
        """Yêu cầu bổ sung, step 1: the papers, as toggles (the state machine judges at the end)."""

        def start() -> tuple[dict[str, Any], InlineKeyboardMarkup]:
            at = _now()
            with session_scope(runtime.engine) as session:
                dossier = session.get(Dossier, dossier_id)
                assert dossier is not None
                if not can(officer.member, Permission.ACT_ON_DOSSIERS, dossier.agency_code):
                    raise desk_actions.NotPermitted
                procedure = runtime.catalog.procedure(dossier.procedure_code)
                keys = {c.code: new_button(session, officer.member.id, dossier_id,
                                           f"toggle:{c.code}", at)
                        for c in procedure.components}  # fmt: skip
                done = new_button(session, officer.member.id, dossier_id, "supplement_done", at)
            waiting = {"dossier_id": dossier_id, "action": Action.REQUEST_SUPPLEMENT.value,
                       "chosen": [], "keys": keys, "done": done}  # fmt: skip
            set_waiting(officer, waiting)
            return waiting, picker(dossier_id, waiting)

        _, markup = await db(start)
        await application.bot.send_message(
            update.effective_chat.id,  # type: ignore[union-attr]
            render("staffbot.pick_components", LANG, code=code),
            reply_markup=markup,
        )

    def supplement_waiting(officer: Officer, dossier_id: int) -> dict[str, Any] | None:
        waiting = officer.link.waiting or {}
        if waiting.get("dossier_id") != dossier_id or "keys" not in waiting:
            return None
        return dict(waiting)

    async def toggle(update: Update, officer: Officer, dossier_id: int, component: str) -> None:
        waiting = supplement_waiting(officer, dossier_id)
        if waiting is None or waiting.get("reason") is not None:
            await say(update, "staffbot.stale")
            return
        chosen = set(waiting["chosen"]) ^ {component}
        waiting["chosen"] = sorted(chosen)
        await db(lambda: set_waiting(officer, waiting))
        markup = await db(lambda: picker(dossier_id, waiting))
        query = update.callback_query
        assert query is not None
        await query.edit_message_reply_markup(reply_markup=markup)

    async def supplement_step(
        update: Update, officer: Officer, dossier_id: int, action: str, code: str
    ) -> None:
        """ "Xong": one text with the reasons comes next; "Xác nhận": the request, once, fully."""
        waiting = supplement_waiting(officer, dossier_id)
        if waiting is None:
            await say(update, "staffbot.stale")
            return
        if action == "supplement_done":
            if not waiting["chosen"]:
                await say(update, "staffbot.pick_one")
                return
            waiting["step"] = "reason"
            await db(lambda: set_waiting(officer, waiting))
            await say(update, "staffbot.ask_supplement", code=code)
            return
        if waiting.get("reason") is None:
            await say(update, "staffbot.stale")
            return
        missing = tuple(MissingItem(c, str(waiting["reason"])) for c in waiting["chosen"])

        def apply() -> Any:
            decision = desk_actions.request_supplement(runtime, dossier_id, officer.member,
                                                       missing, _now())  # fmt: skip
            set_waiting(officer, None)
            return decision

        await db(apply)
        await say(update, "staffbot.done_supplement", code=code)

    async def text(update: Update, officer: Officer, context: Any) -> None:
        message = update.effective_message
        assert message is not None
        body = (message.text or "").strip()
        waiting = officer.link.waiting
        if waiting:
            await reason_given(update, officer, waiting, body)
            return
        answered = message.reply_to_message
        if answered is None:
            await say(update, "staffbot.reply_unknown")
            return

        def relay() -> str | None:
            with Session(runtime.engine) as session:
                dossier_id = session.execute(
                    select(col(OutboxMessage.dossier_id)).where(
                        col(OutboxMessage.channel) == CHANNEL,
                        col(OutboxMessage.recipient) == str(message.chat.id),
                        col(OutboxMessage.sent_ref) == str(answered.message_id),
                    )
                ).scalar_one_or_none()
                dossier = session.get(Dossier, dossier_id) if dossier_id else None
            if dossier is None or dossier.id is None:
                return None
            desk_actions.reply(runtime, dossier.id, officer.member, body, _now())
            return dossier.code

        try:
            code = await db(relay)
        except desk_actions.NotPermitted:
            await say(update, "staffbot.forbidden")
            return
        except StaffError as error:
            await say(update, error.key)
            return
        if code is None:
            await say(update, "staffbot.reply_unknown")
            return
        wake()
        await say(update, "staffbot.done_reply", code=code)

    async def supplement_reason(
        update: Update, officer: Officer, waiting: dict[str, Any], body: str
    ) -> None:
        """Yêu cầu bổ sung, step 2: the reasons, then what will be sent, to confirm."""
        dossier_id = int(waiting["dossier_id"])
        if waiting.get("step") != "reason" or not body:
            await say(update, "staffbot.pick_first")
            return
        waiting = {**waiting, "reason": body[:500]}

        def confirm() -> str:
            set_waiting(officer, waiting)
            with session_scope(runtime.engine) as session:
                return new_button(session, officer.member.id, dossier_id, "confirm_supplement",
                                  _now())  # fmt: skip

        key = await db(confirm)
        markup = InlineKeyboardMarkup(
            [[InlineKeyboardButton(render("staffbot.button.confirm", LANG), callback_data=key)]]
        )
        await application.bot.send_message(
            update.effective_chat.id,  # type: ignore[union-attr]
            render(
                "staffbot.confirm_supplement",
                LANG,
                count=len(waiting["chosen"]),
                reason=waiting["reason"],
            ),
            reply_markup=markup,
        )

    async def reason_given(
        update: Update, officer: Officer, waiting: dict[str, Any], body: str
    ) -> None:
        dossier_id, action = int(waiting["dossier_id"]), str(waiting["action"])
        if action == Action.REQUEST_SUPPLEMENT.value:
            await supplement_reason(update, officer, waiting, body)
            return

        def work() -> tuple[str, str]:
            with session_scope(runtime.engine) as session:
                link = session.get(StaffTelegram, officer.member.id)
                if link is not None:
                    wait_for_text(session, link, None)
            at = _now()
            decision = desk_actions.refuse(runtime, dossier_id, officer.member,
                                           body[:MAX_TEXT], at)  # fmt: skip
            return decision.after.code, "staffbot.done_refuse"

        try:
            code, done = await db(work)
        except DossierRuleError as error:
            await application.bot.send_message(update.effective_chat.id, error.message(LANG))  # type: ignore[union-attr]
            return
        except desk_actions.NotPermitted:
            await say(update, "staffbot.forbidden")
            return
        wake()
        await say(update, done, code=code)

    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("logout", officers_only(logout)))
    application.add_handler(CommandHandler("help", officers_only(help_)))
    application.add_handler(CommandHandler("hangdoi", officers_only(queues)))
    application.add_handler(CommandHandler("denhan", officers_only(due)))
    application.add_handler(CommandHandler("tim", officers_only(search)))
    application.add_handler(CallbackQueryHandler(officers_only(button)))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, officers_only(text)))
    application.add_handler(MessageHandler(filters.ALL, officers_only(help_)))


def _line(runtime: Any, dossier: Dossier) -> str:
    procedures = runtime.catalog.procedures
    name = (
        procedures[dossier.procedure_code].name.vi if dossier.procedure_code in procedures else ""
    )
    status = render(f"status.{dossier.status}", LANG)
    return render("staffbot.found", LANG, code=dossier.code, procedure=name, status=status)


async def started(application: Application[Any, Any, Any, Any, Any, Any], state: Any) -> bool:
    """Initialise the application once (its getMe gives the bot's name); a Bot API that cannot
    be reached when the web process starts is tried again at the next update, not fatal."""
    if getattr(state, "staff_bot_ready", False):
        return True
    try:
        await application.initialize()
    except Exception as error:  # the Bot API is down or refuses the token: say so, go on
        log.warning("staff bot: the Bot API could not be reached: %s", type(error).__name__)
        return False
    state.staff_bot_ready = True
    return True


def new_update(application: Application[Any, Any, Any, Any, Any, Any], data: Any) -> Update:
    """The posted JSON as an Update; ValueError when it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise ValueError("not an update")
    update = Update.de_json(data, application.bot)
    if update is None:
        raise ValueError("not an update")
    return update


def first_time(runtime: Any, update_id: int) -> bool:
    """The replay guard: False for an update seen before (Telegram redelivers)."""
    with session_scope(runtime.engine) as session:
        return first_delivery(session, CHANNEL, str(update_id))


async def setup_webhook(
    application: Application[Any, Any, Any, Any, Any, Any], url: str, secret: str
) -> None:
    """`hcc telegram setup --staff`: the webhook with its secret, and the command menu."""
    bot = application.bot
    await bot.set_webhook(url, secret_token=secret, allowed_updates=["message", "callback_query"])
    for language in ("vi", "en"):
        commands = [BotCommand(name, render(f"staffbot.command.{name}", language))
                    for name in COMMANDS]  # fmt: skip
        await bot.set_my_commands(commands, language_code=language)
