"""`hcc` — run the product and operate it: serve, migrate, catalog, staff, worker, telegram,
zalo, onestop, backup, restore, media."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from webhook.settings import get_settings

if TYPE_CHECKING:  # the commands import what they need when they run
    import httpx

    from bots.zalo import ZaloTokens
    from webhook.runtime import Runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hcc", description="HCC Intake")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate the database and run the web app")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1)

    commands.add_parser("migrate", help="upgrade the database schema to the latest version")

    catalog = commands.add_parser("catalog", help="print the procedure catalog")
    catalog.add_argument("--check", type=Path, metavar="FILE", help="validate an operator file")
    catalog.add_argument("--lang", default="vi", choices=["vi", "en"])

    staff = commands.add_parser("staff", help="desk staff accounts")
    staff_actions = staff.add_subparsers(dest="staff_action", required=True)
    create = staff_actions.add_parser(
        "create", help="create an account; prints a one-time password"
    )
    create.add_argument("username", help="name.unit, e.g. lan.ttphcc")
    create.add_argument("--name", required=True, help="full name as printed on the forms")
    create.add_argument("--agency", required=True, help="agency code, e.g. 000.00.10.H53")
    create.add_argument(
        "--role", default="desk_officer", choices=["desk_officer", "agency_admin", "system_admin"]
    )
    reset = staff_actions.add_parser(
        "reset", help="a new one-time password (ends its sessions, lifts sign-in limits)"
    )
    reset.add_argument("username")
    link = staff_actions.add_parser(
        "link", help="a one-time deep link (10 minutes) binding the account to the staff bot"
    )
    link.add_argument("username")

    worker = commands.add_parser(
        "worker", help="deliver notices and reminders from Redis (rq); needs REDIS_URL"
    )
    worker.add_argument("--burst", action="store_true", help="stop when the queue is empty")

    telegram = commands.add_parser("telegram", help="Telegram bot administration")
    telegram.add_argument("action", choices=["setup"], help="register the bot's webhook")
    telegram.add_argument(
        "--staff", action="store_true", help="the staff bot instead of the citizen bot"
    )

    onestop = commands.add_parser("onestop", help="the province's one-stop information system")
    onestop.add_argument(
        "action",
        choices=["sync", "check"],
        help="sync: apply the system's status of forwarded dossiers (pull mode); "
        "check: list dossiers whose status differs between the two systems",
    )

    zalo = commands.add_parser("zalo", help="Zalo Official Account administration")
    zalo_actions = zalo.add_subparsers(dest="zalo_action", required=True)
    zalo_actions.add_parser("connect", help="print the consent link for the OA admin (PKCE)")
    token = zalo_actions.add_parser(
        "token", help="store an access/refresh pair obtained elsewhere (non-interactive)"
    )
    token.add_argument("--access-token", required=True)
    token.add_argument("--refresh-token", required=True)
    token.add_argument(
        "--expires-in", type=int, default=90000, metavar="SECONDS", help="default: 25 hours"
    )
    zalo_templates = zalo_actions.add_parser(
        "templates", help="the template messages of ZALO_TEMPLATES"
    )
    zalo_templates.add_argument(
        "--check", action="store_true", help="validate them against Zalo's template/info"
    )

    backup = commands.add_parser(
        "backup", help="online snapshot of the SQLite database and the media, with hashes"
    )
    backup.add_argument("directory", type=Path, help="a new or empty directory")
    restore = commands.add_parser(
        "restore", help="restore a backup into an empty install, verifying every hash"
    )
    restore.add_argument("directory", type=Path)
    media = commands.add_parser("media", help="the media store")
    media_actions = media.add_subparsers(dest="media_action", required=True)
    migrate_media = media_actions.add_parser(
        "migrate", help="copy the files of MEDIA_DIR to S3 and verify them (resumable)"
    )
    migrate_media.add_argument("--to", required=True, metavar="s3://BUCKET/PREFIX")

    args = parser.parse_args(argv)
    from webhook.logs import install_secret_masking

    install_secret_masking(get_settings())  # the worker and every command log through it
    if args.command in ("backup", "restore"):
        return _backup(args.command, args.directory)
    if args.command == "media":
        return _media_migrate(args.to)
    if args.command == "zalo":
        return _zalo(args)
    if args.command == "onestop":
        return _onestop(args.action)
    if args.command == "telegram":
        return _telegram_staff_setup() if args.staff else _telegram_setup()
    if args.command == "serve":
        return _serve(args.host, args.port, args.workers)
    if args.command == "staff":
        return _staff(args)
    if args.command == "worker":
        return _worker(args.burst)
    if args.command == "migrate":
        prepare_database()
        return 0
    return _catalog(args.check, args.lang)


def prepare_database() -> list[str]:
    """Migrate, sync the catalog, and seed demo dossiers into an empty database when enabled."""
    from datetime import UTC, datetime

    from storage.db import session_scope
    from storage.demo import seed_demo
    from storage.dossiers import sync_catalog
    from storage.migrate import upgrade
    from webhook.runtime import build_runtime

    settings = get_settings()
    upgrade(settings.database_url)
    runtime = build_runtime(settings)
    with session_scope(runtime.engine) as session:
        sync_catalog(session, runtime.catalog)
        codes: list[str] = []
        if settings.load_demo_data:
            codes = seed_demo(
                session, catalog=runtime.catalog, calendar=runtime.calendar, now=datetime.now(UTC)
            )
    runtime.engine.dispose()
    return codes


def _staff(args: argparse.Namespace) -> int:
    from core.messages import render
    from core.staff import Role
    from storage.db import session_scope
    from storage.staff import StaffError, create_staff, reset_password, staff_by_username
    from webhook.runtime import build_runtime

    if args.staff_action == "link":
        return _staff_link(args.username)
    prepare_database()
    runtime = build_runtime(get_settings())
    try:
        with session_scope(runtime.engine) as session:
            if args.staff_action == "create":
                user, password = create_staff(
                    session,
                    username=args.username,
                    full_name=args.name,
                    agency_code=args.agency,
                    role=Role(args.role),
                )
            else:
                found = staff_by_username(session, args.username)
                if found is None:
                    no_account = render("admin.error.no_account", "vi", username=args.username)
                    print(no_account, file=sys.stderr)
                    return 1
                user, password = found, reset_password(session, found)
            username = user.username
    except StaffError as error:
        print(render(error.key, "vi"), file=sys.stderr)
        return 1
    finally:
        runtime.engine.dispose()
    print(render("admin.staff.one_time", "vi", username=username, password=password))
    return 0


def _staff_link(username: str) -> int:
    """`hcc staff link NAME.UNIT`: the deep link the panel's "Kết nối Telegram" gives."""
    import asyncio
    from datetime import UTC, datetime

    from bots.telegram_staff import make_application
    from core.messages import render
    from storage.db import session_scope
    from storage.staff import staff_by_username
    from storage.staff_bot import deep_link, new_link_token
    from webhook.runtime import build_runtime

    settings = get_settings()
    if settings.telegram_staff_token is None:
        print("Set TELEGRAM_STAFF_TOKEN first.", file=sys.stderr)
        return 2

    async def bot_name() -> str:
        application = make_application(
            settings.telegram_staff_token.get_secret_value(),  # type: ignore[union-attr]
            settings.telegram_api_base,
        )
        async with application.bot as bot:
            return str((await bot.get_me()).username)

    prepare_database()
    runtime = build_runtime(settings)
    try:
        with session_scope(runtime.engine) as session:
            user = staff_by_username(session, username)
            if user is None or user.id is None:
                print(render("admin.error.no_account", "vi", username=username), file=sys.stderr)
                return 1
            token = new_link_token(session, user.id, datetime.now(UTC))
    finally:
        runtime.engine.dispose()
    print(deep_link(asyncio.run(bot_name()), token))
    return 0


def _telegram_staff_setup() -> int:
    """`hcc telegram setup --staff`: the staff bot's webhook, secret and command menu."""
    import asyncio

    from bots.telegram_staff import make_application, setup_webhook

    settings = get_settings()
    token, secret = settings.telegram_staff_token, settings.telegram_staff_webhook_secret
    if token is None or secret is None:
        print("Set TELEGRAM_STAFF_TOKEN and TELEGRAM_STAFF_WEBHOOK_SECRET first.", file=sys.stderr)
        return 2
    url = f"{settings.public_base_url.rstrip('/')}/webhook/telegram/staff"

    async def run() -> None:
        application = make_application(token.get_secret_value(), settings.telegram_api_base)
        async with application.bot:
            await setup_webhook(application, url, secret.get_secret_value())

    asyncio.run(run())
    print(f"Webhook registered: {url}")
    return 0


def _onestop(action: str) -> int:
    """`hcc onestop sync | check`; 2 when no agency has a one-stop system, 1 when `check`
    finds a difference."""
    import httpx

    from bots.channels import onestop_client_for
    from bots.onestop import compare_statuses, pull_statuses
    from core.messages import render
    from webhook.runtime import build_runtime

    runtime = build_runtime(get_settings())
    agencies = set(runtime.flow_rules.onestop)
    if not agencies:
        print(render("onestop.cli.not_configured", "vi"), file=sys.stderr)
        return 2
    with httpx.Client(timeout=runtime.settings.onestop_timeout_seconds) as client:
        client_for = onestop_client_for(runtime, client)
        if action == "sync":
            outcome = pull_statuses(runtime.engine, runtime.catalog, runtime.calendar,
                                    runtime.flow_rules, runtime.onestop, client_for)  # fmt: skip
            for code, what in outcome.items():
                print(f"{code}\t{what}")
            print(render("onestop.cli.synced", "vi", count=len(outcome)))
            return 0
        compared = compare_statuses(runtime.engine, runtime.onestop, agencies, client_for)
    differing = [c for c in compared if c.ours != c.theirs]
    for c in differing:
        print(f"{c.code}\t{c.ours}\t{c.theirs if c.theirs is not None else '-'}")
    print(render("onestop.cli.checked", "vi", count=len(compared), differing=len(differing)))
    return 1 if differing else 0


def _zalo(args: argparse.Namespace) -> int:
    """`hcc zalo connect | token | templates [--check]`; 2 when the channel is not configured."""
    import httpx

    from bots.channels import zalo_tokens
    from core.messages import render
    from storage.migrate import upgrade
    from webhook.runtime import build_runtime

    settings = get_settings()
    if args.zalo_action == "templates" and not args.check:
        return _zalo_templates_list(settings.zalo_templates)
    if args.zalo_action == "token" and (
        not args.access_token.strip() or not args.refresh_token.strip() or args.expires_in <= 0
    ):
        print(render("zalo.cli.token_bad", "vi"), file=sys.stderr)
        return 2
    if args.zalo_action != "connect":
        upgrade(settings.database_url)
    runtime = build_runtime(settings)
    try:
        with httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0)) as client:
            tokens = zalo_tokens(runtime, client)
            if tokens is None:
                print(render("zalo.cli.not_configured", "vi"), file=sys.stderr)
                return 2
            if args.zalo_action == "connect":
                return _zalo_connect(runtime, tokens)
            if args.zalo_action == "token":
                return _zalo_token(runtime, tokens, args)
            return _zalo_templates_check(runtime, client)
    finally:
        runtime.engine.dispose()


def _zalo_connect(runtime: Runtime, tokens: ZaloTokens) -> int:
    from core.messages import render
    from webhook.zalo_oauth import new_consent_link, redirect_uri

    link = new_consent_link(runtime, tokens)
    print(render("zalo.cli.consent_link", "vi", url=link, redirect_uri=redirect_uri(runtime)))
    return 0


def _zalo_token(runtime: Runtime, tokens: ZaloTokens, args: argparse.Namespace) -> int:
    from core.messages import render
    from webhook.health import zalo_state

    tokens.store_pair(args.access_token.strip(), args.refresh_token.strip(), args.expires_in)
    state = zalo_state(runtime)
    print(render("zalo.cli.token_stored", "vi", oa_id=tokens.oa_id, state=state))
    return 0


def _zalo_templates_check(runtime: Runtime, client: httpx.Client) -> int:
    """Each configured template against what Zalo's template/info declares; 1 on problems."""
    from bots.channels import zalo_sender
    from bots.delivery import MemoryThrottle
    from bots.zalo import check_templates
    from core.messages import render
    from core.zalo_templates import TemplateConfigError, load_templates

    path = runtime.settings.zalo_templates
    try:
        mappings = load_templates(path)
    except TemplateConfigError as error:
        print(error, file=sys.stderr)
        return 1
    sender = zalo_sender(runtime, client, MemoryThrottle())
    assert sender is not None  # the caller found the channel configured
    problems = check_templates(sender, mappings)
    if problems:
        count = len(problems)
        print(render("zalo.cli.templates_problems", "vi", path=path, count=count), file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    key = "zalo.cli.templates_ok" if mappings else "zalo.cli.templates_none"
    print(render(key, "vi", path=path, count=len(mappings)))
    return 0


def _zalo_templates_list(path: Path) -> int:
    from core.messages import render
    from core.zalo_templates import TemplateConfigError, load_templates

    try:
        mappings = load_templates(path)
    except TemplateConfigError as error:
        print(error, file=sys.stderr)
        return 1
    if not mappings:
        print(render("zalo.cli.templates_none", "vi", path=path))
    for mapping in mappings.values():
        params = ", ".join(f"{name}={source}" for name, source in mapping.params.items())
        print(f"{mapping.notice:<30} {mapping.template_id}  {params}")
    return 0


def _backup(action: str, directory: Path) -> int:
    """`hcc backup DIR` / `hcc restore DIR`; 1 with the reason (Vietnamese) when refused."""
    from core.messages import render
    from storage.backup import BackupError, backup, restore
    from storage.media import DiskMediaStore

    settings = get_settings()
    media = DiskMediaStore(settings.media_dir)
    try:
        if action == "backup":
            if settings.media_url:
                raise BackupError("backup.media_on_s3")
            manifest = backup(settings.database_url, media, directory, print)
            print(render("backup.done", "vi", count=len(manifest.media), path=directory))
        else:
            manifest = restore(directory, settings.database_url, media, print)
            print(render("backup.restored", "vi", count=len(manifest.media)))
    except BackupError as error:
        print(render(error.key, "vi", **error.values), file=sys.stderr)
        return 1
    return 0


def _media_migrate(url: str) -> int:
    """`hcc media migrate --to s3://…`: every file of MEDIA_DIR and every key the database names;
    1 listing each mismatch or missing file."""
    import sqlite3

    from core.documents import StorageUnavailable
    from core.messages import render
    from storage.backup import (
        BackupError,
        move_media,
        referenced_media,
        sqlite_path,
        sqlite_query,
    )
    from storage.media import DiskMediaStore
    from storage.media_s3 import parse_media_url
    from webhook.runtime import media_store

    settings = get_settings()
    try:
        parse_media_url(url)
    except ValueError:
        print(render("backup.migrate_not_s3", "vi"), file=sys.stderr)
        return 2
    source = DiskMediaStore(settings.media_dir)
    keys = set(source.stored_keys())
    try:
        path = sqlite_path(settings.database_url)
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            keys |= referenced_media(sqlite_query(connection))
        connection.close()
    except BackupError:  # PostgreSQL: read the same tables through SQLAlchemy
        from storage.db import make_engine

        engine = make_engine(settings.database_url)
        with engine.connect() as sa_connection:
            keys |= referenced_media(lambda sql: sa_connection.exec_driver_sql(sql).fetchall())
        engine.dispose()

    def progress(number: int, total: int, key: str, outcome: str) -> None:
        print(f"[{number}/{total}] {outcome:<10} {key}", flush=True)

    try:
        moved = move_media(source, media_store(settings, url), keys, progress)
    except StorageUnavailable as error:
        print(render("backup.store_unavailable", "vi", reason=error), file=sys.stderr)
        return 1
    print(render("backup.migrated", "vi", url=url, copied=len(moved.copied),
                 skipped=len(moved.skipped), mismatched=len(moved.mismatched),
                 missing=len(moved.missing)))  # fmt: skip
    if moved.mismatched or moved.missing:
        print(render("backup.migrate_problems", "vi"), file=sys.stderr)
        for key in moved.mismatched:
            print(f"  mismatch {key}", file=sys.stderr)
        for key in moved.missing:
            print(f"  missing  {key}", file=sys.stderr)
        return 1
    return 0


def _worker(burst: bool) -> int:
    import logging

    from webhook.jobs import run_worker

    settings = get_settings()
    if not settings.redis_url:
        print("hcc worker needs REDIS_URL; without it `hcc serve` delivers notices itself.",
              file=sys.stderr)  # fmt: skip
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines carry the bot token
    run_worker(settings, burst=burst)
    return 0


def _serve(host: str | None, port: int | None, workers: int) -> int:
    import uvicorn

    settings = get_settings()
    problems = settings.unsafe_for_public_use()
    if problems:
        print(f"Refusing to serve {settings.public_base_url}: " + "; ".join(problems) + ".",
              file=sys.stderr)  # fmt: skip
        return 2
    codes = prepare_database()
    host, port = host or settings.host, port or settings.port
    if "public_base_url" not in settings.model_fields_set:
        # Not configured: links and QR codes point at this server, on the port it really uses.
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        os.environ["PUBLIC_BASE_URL"] = f"http://{shown}:{port}"
        get_settings.cache_clear()
        settings = get_settings()
    base = settings.public_base_url.rstrip("/")
    print(f"HCC Intake on http://{host}:{port}  (database: {settings.database_url})")
    print(f"Public lookup: {base}/lookup")
    for code in codes:
        print(f"  demo dossier: {base}/lookup/{code}")
    uvicorn.run(
        "webhook.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )
    return 0


def _telegram_setup() -> int:
    import asyncio

    from bots.telegram_citizen import make_bot, setup_webhook

    settings = get_settings()
    token, secret = settings.telegram_citizen_token, settings.telegram_webhook_secret
    if token is None or secret is None:
        print("Set TELEGRAM_CITIZEN_TOKEN and TELEGRAM_WEBHOOK_SECRET first.", file=sys.stderr)
        return 2

    async def run() -> str:
        bot = make_bot(token.get_secret_value(), settings.telegram_api_base)
        try:
            return await setup_webhook(bot, settings.public_base_url, secret.get_secret_value())
        finally:
            await bot.session.close()

    print(f"Webhook registered: {asyncio.run(run())}")
    return 0


def _catalog(check: Path | None, lang: str) -> int:
    from core.catalog import CatalogError, check_file, load_catalog

    if check is not None:
        errors = check_file(check)
        for error in errors:
            print(error, file=sys.stderr)
        if not errors:
            print(f"{check}: OK")
        return 1 if errors else 0
    try:
        catalog = load_catalog(get_settings().catalog_dir)
    except CatalogError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"{catalog.province.name.get(lang)} ({catalog.province.code})")
    for procedure in catalog.procedures.values():
        days = "0*" if procedure.same_day else str(procedure.processing_days)
        print(
            f"  {procedure.code:<10} {procedure.name.get(lang)}  [{procedure.field.get(lang)}]"
            f"  days={days} fee={procedure.fee_vnd}"
        )
        for component in procedure.components:
            mark = "*" if component.required else "-"
            print(f"      {mark} {component.name.get(lang)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
