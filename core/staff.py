"""Staff of the one-stop desk: roles, what each may do, account names and password rules.

One table decides every permission, so the panel, the staff bot and the tests ask the same
question: `can(staff, permission, agency_code)`.
"""

from __future__ import annotations

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
MAX_FAILED_LOGINS = 5
LOCKOUT_MINUTES = 15


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
