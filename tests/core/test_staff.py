"""Who may do what: every permission for every role, in their agency and in another one."""

from __future__ import annotations

import pytest

from core.staff import (
    Permission,
    Role,
    StaffMember,
    can,
    password_problem,
    roles_assignable_by,
    username_problem,
)

OWN, OTHER = "000.00.10.H53", "000.20.01.H53"

# role → permissions allowed in their own agency / in any other agency
EXPECTED: dict[Role, tuple[set[Permission], set[Permission]]] = {
    Role.DESK_OFFICER: (
        {Permission.VIEW_DOSSIERS, Permission.ACT_ON_DOSSIERS, Permission.VIEW_REPORTS,
         Permission.RETRY_DELIVERY},
        set(),
    ),
    Role.AGENCY_ADMIN: (
        {Permission.VIEW_DOSSIERS, Permission.ACT_ON_DOSSIERS, Permission.VIEW_REPORTS,
         Permission.RETRY_DELIVERY, Permission.MANAGE_STAFF, Permission.MANAGE_CANNED_REPLIES},
        set(),
    ),
    Role.SYSTEM_ADMIN: (
        {Permission.MANAGE_STAFF, Permission.VIEW_REPORTS, Permission.RETRY_DELIVERY,
         Permission.OPERATE},
        {Permission.MANAGE_STAFF, Permission.VIEW_REPORTS, Permission.RETRY_DELIVERY,
         Permission.OPERATE},
    ),
}  # fmt: skip


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_every_permission_of_every_role(role: Role, permission: Permission) -> None:
    staff = StaffMember(1, "lan.ttphcc", "Lan", OWN, role)
    own, other = EXPECTED[role]
    assert can(staff, permission, OWN) == (permission in own)
    assert can(staff, permission, OTHER) == (permission in other)


def test_nobody_makes_someone_more_powerful_than_themselves() -> None:
    def member(role: Role) -> StaffMember:
        return StaffMember(1, "a.b", "A", OWN, role)

    assert roles_assignable_by(member(Role.DESK_OFFICER)) == ()
    assert Role.SYSTEM_ADMIN not in roles_assignable_by(member(Role.AGENCY_ADMIN))
    assert set(roles_assignable_by(member(Role.SYSTEM_ADMIN))) == set(Role)


@pytest.mark.parametrize(
    ("username", "ok"),
    [("lan.ttphcc", True), ("an2.phuong3", True), ("Lan.ttphcc", False), ("lan", False),
     ("lan.tt.phcc", False), ("lân.ttphcc", False), ("l.ttphcc", False)],
)  # fmt: skip
def test_accounts_are_personal_name_dot_unit(username: str, ok: bool) -> None:
    assert (username_problem(username) is None) == ok


def test_password_rules() -> None:
    assert password_problem("short", "lan.ttphcc") == "admin.error.password_short"
    assert password_problem("lan-2026-hcc", "lan.ttphcc") == "admin.error.password_has_name"
    assert password_problem("aaaaaaaaaaaa", "lan.ttphcc") == "admin.error.password_simple"
    assert password_problem("Một-cửa-2026!", "lan.ttphcc") is None
    assert password_problem("Mc-2026-ok", "lan.ttphcc") is None  # 10 characters are enough
    assert password_problem("abcdabcdabcd", "lan.ttphcc") is None  # 4 different ones too
