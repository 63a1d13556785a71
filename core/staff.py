"""Staff of the one-stop desk: roles, what each may do, account names and password rules.

One table decides every permission, so the panel, the staff bot and the tests ask the same
question: `can(staff, permission, agency_code)`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    DESK_OFFICER = "desk_officer"  # cán bộ một cửa: works the dossiers of their agency
    AGENCY_ADMIN = "agency_admin"  # lãnh đạo / quản trị đơn vị: also accounts and canned replies
    SYSTEM_ADMIN = "system_admin"  # quản trị hệ thống: accounts and reports of every agency


class Permission(StrEnum):
    VIEW_DOSSIERS = "view_dossiers"  # inbox, dossier page, files, forms (personal data)
    ACT_ON_DOSSIERS = "act_on_dossiers"  # accept, supplement, refuse, reply, transfer, …
    MANAGE_STAFF = "manage_staff"
    MANAGE_CANNED_REPLIES = "manage_canned_replies"
    VIEW_REPORTS = "view_reports"
    RETRY_DELIVERY = "retry_delivery"  # dead letters of the outbox
    OPERATE = "operate"  # the installation's own state: media store, tokens, queues


# Who may do what. "own" = only within their agency; "any" = every agency.
_RULES: dict[Role, dict[Permission, str]] = {
    Role.DESK_OFFICER: {
        Permission.VIEW_DOSSIERS: "own",
        Permission.ACT_ON_DOSSIERS: "own",
        Permission.VIEW_REPORTS: "own",
        Permission.RETRY_DELIVERY: "own",
    },
    Role.AGENCY_ADMIN: {
        Permission.VIEW_DOSSIERS: "own",
        Permission.ACT_ON_DOSSIERS: "own",
        Permission.VIEW_REPORTS: "own",
        Permission.RETRY_DELIVERY: "own",
        Permission.MANAGE_STAFF: "own",
        Permission.MANAGE_CANNED_REPLIES: "own",
    },
    # The system administrator runs the installation, not the dossiers: no personal data.
    Role.SYSTEM_ADMIN: {
        Permission.MANAGE_STAFF: "any",
        Permission.VIEW_REPORTS: "any",
        Permission.RETRY_DELIVERY: "any",
        Permission.OPERATE: "any",
    },
}


@dataclass(frozen=True)
class StaffMember:
    id: int
    username: str
    full_name: str
    agency_code: str
    role: Role


def can(staff: StaffMember, permission: Permission, agency_code: str) -> bool:
    """May `staff` use `permission` on something that belongs to `agency_code`?"""
    scope = _RULES[staff.role].get(permission)
    return scope == "any" or (scope == "own" and agency_code == staff.agency_code)


def holds_permissions_of(staff: StaffMember, role: Role, agency_code: str) -> bool:
    """Does `staff` already hold every permission an account of `role` at `agency_code` has?
    Only such a person may be shown that account's one-time password: signing in with it gives
    them nothing they did not have (a system admin gets no officer's access to personal data)."""
    return all(can(staff, permission, agency_code) for permission in _RULES[role])


def may_manage_account(staff: StaffMember, role: Role, agency_code: str) -> bool:
    """May `staff` reset, unlock or change the role of an account of `role` at `agency_code`?
    A system admin manages every account; an agency admin the desk officers of their agency,
    not a peer admin (a reset would let them sign in as that peer)."""
    if staff.role is Role.SYSTEM_ADMIN:
        return True
    return (
        staff.role is Role.AGENCY_ADMIN
        and agency_code == staff.agency_code
        and role is Role.DESK_OFFICER
    )


def roles_assignable_by(staff: StaffMember) -> tuple[Role, ...]:
    """An agency admin makes officers and admins of their agency; only a system admin makes
    another system admin."""
    if staff.role is Role.SYSTEM_ADMIN:
        return tuple(Role)
    if staff.role is Role.AGENCY_ADMIN:
        return (Role.DESK_OFFICER, Role.AGENCY_ADMIN)
    return ()


USERNAME = re.compile(r"^[a-z][a-z0-9]{1,31}\.[a-z][a-z0-9]{1,31}$")
MIN_PASSWORD_LENGTH = 10


class AccountEventKind(StrEnum):
    """What the account audit log records (nhật ký tài khoản)."""

    CREATED = "created"
    RESET = "reset"
    LIMITED = "limited"  # failed sign-ins from one address began to be slowed down
    UNLOCKED = "unlocked"  # an admin lifted those limits
    ROLE_CHANGED = "role_changed"
    SIGNED_IN = "signed_in"
    SIGNED_OUT = "signed_out"
    PASSWORD_CHANGED = "password_changed"


@dataclass(frozen=True)
class Throttle:
    """A limit on failed sign-ins: the count fades (divided by e every `mean_life_seconds`, so
    about `free` per mean life can go on forever); beyond `free`, the next try waits
    `first_wait_seconds` and each further failure doubles the wait, up to `max_wait_seconds`.
    A progressive delay, not a lock: it ends by itself."""

    free: float
    mean_life_seconds: float
    first_wait_seconds: float = 5.0
    max_wait_seconds: float = 15 * 60

    def faded(self, score: float, elapsed_seconds: float) -> float:
        return score * math.exp(-max(elapsed_seconds, 0.0) / self.mean_life_seconds)

    def wait_seconds(self, score: float) -> float:
        """How long after a failure that brought the count to `score` the next try must wait."""
        if score < self.free:
            return 0.0
        return min(self.max_wait_seconds, self.first_wait_seconds * 2.0 ** (score - self.free))


# One address and one account name: an officer mistyping is not slowed for 5 tries, a guesser is.
# Keyed on the address too, so hammering an account from elsewhere cannot keep its officer out.
ACCOUNT_THROTTLE = Throttle(free=5, mean_life_seconds=15 * 60)


def address_throttle(per_minute: int) -> Throttle:
    """One address, every account name: `per_minute` failures in any minute go on unhindered for
    good — a burst of that many each minute settles just under per_minute / (1 - 1/e), one more is
    allowed for slack — and more wait."""
    return Throttle(free=per_minute / (1 - math.exp(-1)) + 1, mean_life_seconds=60)


def normal_username(typed: str) -> str:
    """The account name as stored and looked up, however it was typed ("LAN.ttphcc " →
    lan.ttphcc): one rule for creating, signing in and resetting."""
    return typed.strip().lower()


def username_problem(username: str) -> str | None:
    """Personal accounts are `name.unit` (e.g. lan.ttphcc): lower-case letters and digits."""
    return None if USERNAME.fullmatch(username) else "admin.error.username_format"


def password_problem(password: str, username: str) -> str | None:
    """A message key when the new password is not acceptable, else None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return "admin.error.password_short"
    if username.split(".")[0] in password.lower() or password.lower() == username:
        return "admin.error.password_has_name"
    if len(set(password)) < 4:
        return "admin.error.password_simple"
    return None
