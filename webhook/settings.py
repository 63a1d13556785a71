"""The one place configuration is read: environment variables and an optional `.env` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.db import DEFAULT_POOL_SIZE

if TYPE_CHECKING:
    from core.onestop import ConnectionDefaults

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ONESTOP_AGENCIES = REPO_ROOT / "data" / "onestop" / "agencies.toml"
DEV_SECRET_KEY = "dev-only-change-me"


class Settings(BaseSettings):
    """Every knob of the product. Secrets come only from the environment (or `.env`)."""

    # An empty variable (as left by copying .env.example) means "not set", not "empty string".
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    database_url: str = f"sqlite:///{REPO_ROOT / 'var' / 'hcc.sqlite3'}"
    # Bounds on database waits, so an outage gets "try again later" (503) instead of a hang:
    # opening a connection and one statement (PostgreSQL; 0 = no limit), and waiting for a free
    # connection of the pool.
    database_connect_timeout_seconds: float = Field(default=3.0, ge=0)
    database_statement_timeout_seconds: float = Field(default=15.0, ge=0)
    database_pool_timeout_seconds: float = Field(default=2.0, gt=0)
    # Connections each pool of a web process keeps open (PostgreSQL): at least the requests
    # it has in flight, or connections are opened and closed under load.
    database_pool_size: int = Field(default=DEFAULT_POOL_SIZE, ge=1)
    redis_url: str | None = None
    # Failed panel sign-ins one client address may make per minute before each further try
    # waits twice as long (per address and account name: 5); 0 = no limit (storage.staff).
    rate_limit_login_per_minute: int = Field(default=10, ge=0, le=10_000)
    media_dir: Path = REPO_ROOT / "var" / "media"
    # Media on S3-compatible object storage instead of MEDIA_DIR (docs/operations.md): set
    # MEDIA_URL=s3://bucket/prefix; the endpoint is AWS's unless S3_ENDPOINT_URL is set (MinIO…).
    media_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_sse: Literal["AES256", "aws:kms"] | None = None  # server-side encryption of new objects
    s3_sse_kms_key_id: str | None = None  # with aws:kms; unset = the bucket's default key
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    # A photo turn waits at most about attempts × (connect + read + 1 s, botocore's wait for
    # `100 Continue`) before the citizen is told to send it again later.
    s3_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    s3_read_timeout_seconds: float = Field(default=10.0, gt=0)
    s3_max_attempts: int = Field(default=2, ge=1, le=5)
    public_base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    catalog_dir: Path = REPO_ROOT / "data" / "catalog" / "tay-ninh"
    calendar_overrides: Path = REPO_ROOT / "data" / "calendar" / "vn-overrides.toml"
    load_demo_data: bool = True

    # SMS (docs/sms.md): the gateway the province contracts, one adapter each
    # (bots/sms_gateways). json: our own signed JSON on POST /webhook/sms (always on when
    # SMS_WEBHOOK_SECRET is set); the others on /webhook/sms/<gateway>[/<secret>].
    sms_gateway: Literal["json", "esms", "jasmin", "kannel", "smsgate"] = "json"
    sms_webhook_secret: SecretStr | None = None  # json: X-Signature HMAC key
    # Outbound SMS for json and esms (status pushes, fallback when a chat is unreachable): any
    # HTTP gateway taking a JSON POST (eSMS's SendMultipleMessage_V4_post_json, for one).
    sms_gateway_url: str | None = None
    sms_gateway_auth_header: SecretStr | None = None  # e.g. "Authorization: Bearer <key>"
    sms_gateway_body: str = '{"to": "{phone}", "text": "{text}"}'
    # eSMS.vn short code: `sign` = MD5 of these fields' values joined in this order, "key" being
    # the private key (⚠ the order is the provider's contract: check it against their document).
    esms_private_key: SecretStr | None = None
    esms_sign_fields: str = "cpid,smsid,content,receiverTime,key"
    esms_cpid: str | None = None  # when set, a request for another cpid is refused
    # Jasmin and Kannel sign nothing: a secret path segment, an allow-list of peer IPs, or both.
    jasmin_webhook_secret: SecretStr | None = None
    jasmin_allowed_ips: str = ""  # comma-separated; empty = any peer (then the secret is a must)
    jasmin_send_url: str | None = None  # e.g. http://jasmin:1401/send
    jasmin_username: str | None = None
    jasmin_password: SecretStr | None = None
    jasmin_from: str | None = None  # the short code the replies come from
    kannel_webhook_secret: SecretStr | None = None
    kannel_allowed_ips: str = ""
    kannel_sendsms_url: str | None = None  # e.g. http://kannel:13013/cgi-bin/sendsms (pushes)
    kannel_username: str | None = None
    kannel_password: SecretStr | None = None
    kannel_from: str | None = None
    # SMSGate (android-sms-gateway): X-Signature = HMAC-SHA256(raw body + X-Timestamp).
    smsgate_signing_key: SecretStr | None = None
    smsgate_max_age_seconds: float = Field(default=300.0, gt=0)  # older X-Timestamp: refused
    # The send API: http://<phone>:8080 (local server) or https://api.sms-gate.app/3rdparty/v1
    smsgate_api_url: str | None = None
    smsgate_username: str | None = None
    smsgate_password: SecretStr | None = None

    telegram_citizen_token: SecretStr | None = None
    telegram_staff_token: SecretStr | None = None  # the staff bot (bots/telegram_staff.py)
    telegram_staff_webhook_secret: SecretStr | None = None  # its X-Telegram-Bot-Api-Secret-Token
    telegram_webhook_secret: SecretStr | None = None
    telegram_api_base: str = "https://api.telegram.org"
    telegram_max_per_second: float = 30.0  # Telegram's overall limit per bot; 0 = no limit
    telegram_per_chat_interval: float = 1.0  # at most one message per second into one chat
    # How long a webhook call waits for its replies to reach Telegram before answering anyway
    # (the replies go on in the background); well under Telegram's own timeout.
    telegram_reply_budget_seconds: float = 5.0

    # Delivery of the outbox: how long a claimed message is held before another worker may
    # retry it, and how often the dispatcher looks for due messages and reminders.
    outbox_lease_seconds: float = 30.0
    dispatch_interval_seconds: float = 1.0
    reminder_interval_seconds: float = 60.0

    # The Zalo Official Account (docs/zalo.md): enabled when the app id and the OA secret key are
    # set. Every OA call goes under zalo_api_base, OAuth under zalo_oauth_base, template messages
    # under zalo_business_api_base; attachments are fetched only from zalo_media_hosts.
    zalo_app_id: str | None = None
    zalo_app_secret: SecretStr | None = None  # the app's secret key (OAuth `secret_key` header)
    zalo_oa_id: str | None = None
    zalo_oa_secret_key: SecretStr | None = None  # verifies X-ZEvent-Signature
    zalo_api_base: str = "https://openapi.zalo.me"
    zalo_oauth_base: str = "https://oauth.zaloapp.com"
    zalo_business_api_base: str = "https://business.openapi.zalo.me"
    zalo_media_hosts: str = "zalo.me,zadn.vn,zdn.vn,zaloapp.com"
    zalo_templates: Path = REPO_ROOT / "data" / "zalo" / "templates.toml"
    zalo_max_per_minute: float = 4000.0  # the OA's limit, about 4,000 requests/min; 0 = none

    # The province's one-stop information system (docs/onestop.md). The env gives the default
    # connection of every agency (on when onestop_base_url and onestop_client_id are set); the
    # agencies file overrides it per agency; the mapping file names the fields on the wire.
    onestop_base_url: str | None = None
    onestop_token_url: str | None = None  # OAuth2 client credentials; default {base}/token
    onestop_client_id: str | None = None
    onestop_client_secret: SecretStr | None = None
    onestop_callback_secret: SecretStr | None = None  # verifies X-Onestop-Signature
    onestop_agencies: Path | None = None  # default data/onestop/agencies.toml when present
    onestop_mapping: Path = REPO_ROOT / "data" / "onestop" / "national.toml"
    onestop_timeout_seconds: float = Field(default=10.0, gt=0)
    # File links given to the one-stop system expire (our signed links, or the S3 store's
    # pre-signed URLs, which S3 caps at 7 days).
    onestop_file_url_seconds: int = Field(default=86400, gt=0)
    onestop_sync_minutes: float = Field(default=0.0, ge=0)  # pull mode interval; 0 = off

    # GET /metrics for Prometheus, with `Authorization: Bearer <token>`; unset = no route.
    metrics_token: SecretStr | None = None

    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def zalo_enabled(self) -> bool:
        return bool(self.zalo_app_id and self.zalo_oa_secret_key)

    @property
    def onestop_agencies_file(self) -> Path | None:
        """The agencies file: the one configured, or the shipped example when it exists."""
        if self.onestop_agencies is not None:
            return self.onestop_agencies
        return DEFAULT_ONESTOP_AGENCIES if DEFAULT_ONESTOP_AGENCIES.exists() else None

    @property
    def onestop_defaults(self) -> ConnectionDefaults:
        """The env's part of `core.onestop.load_connections`."""
        from core.onestop import ConnectionDefaults  # the settings module stays light

        return ConnectionDefaults(
            mapping=self.onestop_mapping,
            base_url=self.onestop_base_url,
            token_url=self.onestop_token_url,
            client_id=self.onestop_client_id,
        )

    @property
    def zalo_media_host_list(self) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in self.zalo_media_hosts.split(",") if h.strip())

    def unsafe_for_public_use(self) -> list[str]:
        """Settings that must change before citizens can reach this instance."""
        problems = []
        local = urlparse(self.public_base_url).hostname in ("127.0.0.1", "localhost", "::1")
        secret = self.secret_key.get_secret_value()
        if not local and (secret == DEV_SECRET_KEY or len(secret) < 32):
            problems.append("SECRET_KEY is the development default or shorter than 32 characters")
        if not local and self.load_demo_data:
            problems.append("LOAD_DEMO_DATA is on")
        return problems


@lru_cache
def get_settings() -> Settings:
    return Settings()
