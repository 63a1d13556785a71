"""The dialogue alone, as transcripts on the in-memory back office (Zulip's bot tests are the
model): each turn is what the citizen does and a piece of what the bot must answer.

Every `Step` is visited: an unexpected input (a sticker) and a reload of the web chat
(`nav:resume`) must ask that step's own question again and leave the step where it is, and the
next ordinary input must be taken by that step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from core.catalog import Catalog
from core.conversation import Conversation, Incoming, IncomingFile, Step, handle
from core.dossier import Status
from core.replies import Reply
from tests import images
from tests.core.backoffice import MemoryBackoffice

BIRTH = "1.001193"  # Đăng ký khai sinh: three receiving agencies, three required papers
CRIMINAL_RECORD = "2.000488"  # Lý lịch tư pháp: one receiving agency, one optional paper
WARD = "000.20.01.H53"
FIRST_CODE = f"{WARD}-261207-0001"  # what MemoryBackoffice numbers the first dossier at WARD
CERTIFICATE = "Giấy chứng sinh (hoặc văn bản làm chứng / cam đoan)"  # BIRTH's second paper


def text(words: str) -> Incoming:
    return Incoming(text=words)


def press(data: str) -> Incoming:
    return Incoming(button=data)


def photos(*seeds: int) -> Incoming:
    return Incoming(files=tuple(IncomingFile(images.good_jpeg(seed)) for seed in seeds))


STICKER = Incoming(unsupported=True)
RELOAD = press("nav:resume")


class Dialogue:
    """One citizen's conversation, turn by turn, on the in-memory back office."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.conversation = Conversation()
        self.backoffice = MemoryBackoffice(catalog)

    def send(self, incoming: Incoming) -> list[Reply]:
        return handle(self.conversation, incoming, catalog=self.catalog, backoffice=self.backoffice)

    def transcript(self, turns: list[tuple[Incoming, str]]) -> None:
        for number, (incoming, expected) in enumerate(turns, start=1):
            answer = said(self.send(incoming))
            assert expected in answer, f"turn {number}, {incoming}: {answer!r}"


def said(replies: list[Reply]) -> str:
    return "\n".join(reply.text for reply in replies)


@pytest.fixture
def dialogue(catalog: Catalog) -> Dialogue:
    return Dialogue(catalog)


# ---------------------------------------------------------------------------- every step


@dataclass(frozen=True)
class Visit:
    """How to reach one step, what it asks, and one ordinary input it must then take."""

    path: tuple[Incoming, ...]
    asks: str  # a piece of the step's own question
    then: Incoming
    answer: str  # a piece of the answer to `then`
    back: Step  # where "back" leads from here
    desk: Callable[[MemoryBackoffice], None] = lambda backoffice: None  # done before the path
    back_asks: str = ""  # what the step before asks, when not what its own visit shows


def _waiting_for_supplement(backoffice: MemoryBackoffice) -> None:
    code = backoffice.add_dossier(BIRTH, WARD).code
    backoffice.request_supplement(code, ("giay_chung_sinh", "Ảnh bị lóa, chụp lại"))


def _returned(backoffice: MemoryBackoffice) -> None:
    backoffice.return_result(backoffice.add_dossier(BIRTH, WARD).code)


def _submitted(backoffice: MemoryBackoffice) -> None:
    backoffice.add_dossier(BIRTH, WARD)


TO_NAME = (text(f"/start {BIRTH}"), press("req:start"), press(f"agency:{WARD}"))
TO_DOCUMENTS = (*TO_NAME, text("Trần Văn Bình"), text("0987654321"))
TO_SUPPLEMENT = (text("/start"), press("menu:supplement"))

VISITS: dict[Step, Visit] = {
    Step.MENU: Visit(
        (text("/start"),), "Bạn muốn làm gì?",
        text("khai sinh"), "Giấy tờ cần chụp", back=Step.MENU,
    ),
    Step.CHOOSE_PROCEDURE: Visit(
        (text("/start"), press("menu:submit")), "Chọn thủ tục bạn muốn nộp",
        press(f"proc:{BIRTH}"), "Giấy tờ cần chụp", back=Step.MENU,
    ),
    Step.REQUIREMENTS: Visit(
        (text(f"/start {BIRTH}"),), "Giấy tờ cần chụp",
        press("req:start"), "Chọn nơi bạn sẽ nhận kết quả", back=Step.CHOOSE_PROCEDURE,
    ),
    Step.CHOOSE_AGENCY: Visit(
        TO_NAME[:2], "Chọn nơi bạn sẽ nhận kết quả",
        press(f"agency:{WARD}"), "Họ và tên người nộp", back=Step.REQUIREMENTS,
    ),
    Step.NAME: Visit(
        TO_NAME, "Họ và tên người nộp",
        text("Trần Văn Bình"), "Số điện thoại di động", back=Step.REQUIREMENTS,
    ),
    Step.PHONE: Visit(
        (*TO_NAME, text("Trần Văn Bình")), "Số điện thoại di động",
        text("0987654321"), "Giấy tờ 1/3", back=Step.NAME,
    ),
    Step.DOCUMENTS: Visit(
        TO_DOCUMENTS, "Giấy tờ 1/3: Tờ khai đăng ký khai sinh",
        photos(1), "Đã nhận 1 ảnh cho “Tờ khai đăng ký khai sinh”", back=Step.PHONE,
    ),
    Step.REVIEW: Visit(
        (*TO_DOCUMENTS, photos(1), press("doc:done"), photos(2), press("doc:done"), photos(3),
         press("doc:done")),
        "Kiểm tra lại trước khi nộp",
        press("review:submit"), f"Mã số hồ sơ của bạn: {FIRST_CODE}", back=Step.DOCUMENTS,
        back_asks="Giấy tờ 3/3",  # the last paper
    ),
    Step.LOOKUP: Visit(
        (text("/start"), press("menu:lookup")), "Gửi mã số hồ sơ",
        text(FIRST_CODE), f"Hồ sơ {FIRST_CODE}", back=Step.MENU, desk=_submitted,
    ),
    Step.SUPPLEMENT: Visit(
        TO_SUPPLEMENT, "Bổ sung 1/1",
        photos(4), "Đã nhận 1 ảnh", back=Step.MENU, desk=_waiting_for_supplement,
    ),
    Step.SUPPLEMENT_REVIEW: Visit(
        (*TO_SUPPLEMENT, photos(4), press("doc:done")), f"Phần bổ sung cho hồ sơ {FIRST_CODE}",
        press("sup:send"), f"Đã gửi phần bổ sung cho hồ sơ {FIRST_CODE}",
        back=Step.MENU, desk=_waiting_for_supplement,
    ),
    Step.RATING_COMMENT: Visit(
        (text("/start"), press(f"rate:{FIRST_CODE}:4")), "Bạn có muốn góp ý thêm?",
        text("Cán bộ rất tận tình"), "Cảm ơn bạn.\n", back=Step.MENU, desk=_returned,
    ),
    Step.FEEDBACK: Visit(
        (text("/start"), press("menu:feedback")), "Hãy viết phản ánh, kiến nghị",
        text("Tra cứu hồ sơ"), "Phản ánh đã được ghi nhận", back=Step.MENU,
    ),
    Step.REPLY_DESK: Visit(
        (text("/start"), press(f"reply:{FIRST_CODE}")), "Viết câu trả lời cho cán bộ về hồ sơ",
        text("Dạ, mai tôi mang đến."), "Đã chuyển câu trả lời", back=Step.MENU, desk=_submitted,
    ),
}  # fmt: skip


def _arrive(dialogue: Dialogue, step: Step) -> Visit:
    assert step in VISITS, f"no visit for {step}: add one to VISITS"
    visit = VISITS[step]
    visit.desk(dialogue.backoffice)
    for incoming in visit.path:
        dialogue.send(incoming)
    assert dialogue.conversation.step == step, "the path does not lead to the step"
    return visit


@pytest.mark.parametrize("step", list(Step))
def test_a_sticker_or_a_reload_asks_the_step_again_and_the_step_goes_on(
    dialogue: Dialogue, step: Step
) -> None:
    visit = _arrive(dialogue, step)
    sticker = said(dialogue.send(STICKER))
    assert "chưa hiểu loại tin nhắn này" in sticker and visit.asks in sticker
    assert dialogue.conversation.step == step
    assert visit.asks in said(dialogue.send(RELOAD))
    assert dialogue.conversation.step == step
    assert visit.answer in said(dialogue.send(visit.then))


@pytest.mark.parametrize("step", [s for s in Step if s is not Step.CHOOSE_AGENCY])
def test_a_location_where_none_is_used_says_so_asks_the_step_again_and_the_step_goes_on(
    dialogue: Dialogue, step: Step
) -> None:
    visit = _arrive(dialogue, step)
    first, *rest = dialogue.send(Incoming(location=(11.2965, 106.1277)))
    assert first.text == "Vị trí chỉ dùng khi chọn nơi nộp hồ sơ; bước này cần thông tin dưới đây."
    assert visit.asks in said(rest) and dialogue.conversation.step == step
    assert dialogue.conversation.near == {}
    assert visit.answer in said(dialogue.send(visit.then))


@pytest.mark.parametrize("step", list(Step))
def test_back_leads_to_the_step_before_and_asks_its_question(
    dialogue: Dialogue, step: Step
) -> None:
    visit = _arrive(dialogue, step)
    before = visit.back_asks or VISITS[visit.back].asks
    assert before in said(dialogue.send(press("nav:back")))
    assert dialogue.conversation.step == visit.back
    assert before in said(dialogue.send(RELOAD))


def test_the_feedback_step_files_only_what_the_citizen_was_asked_for(dialogue: Dialogue) -> None:
    dialogue.transcript([
        (text("/start"), "Bạn muốn làm gì?"),
        (press("menu:feedback"), "Hãy viết phản ánh, kiến nghị"),
        (RELOAD, "Hãy viết phản ánh, kiến nghị"),
        (text("Đường vào trung tâm bị ngập"), "Phản ánh đã được ghi nhận"),
        (text("Tra cứu hồ sơ"), "Bạn muốn làm gì?"),  # back at the menu: not feedback
    ])  # fmt: skip
    assert dialogue.backoffice.feedback_given == [("Đường vào trung tâm bị ngập", [])]


def test_a_stored_step_this_version_does_not_know_starts_at_the_menu() -> None:
    assert Conversation.from_json({"step": "choose_colour"}).step is Step.MENU
    assert Conversation.from_json({}).step is Step.MENU
    stored = json.loads(json.dumps(Conversation(step=Step.REPLY_DESK).to_json()))
    assert stored["step"] == "reply_desk"  # stored conversations keep their strings
    assert Conversation.from_json(stored).step is Step.REPLY_DESK


# ---------------------------------------------------------------------------- whole transcripts


def test_submit_with_photos(dialogue: Dialogue) -> None:
    code = "000.00.21.H53-261207-0001"
    dialogue.transcript([
        (text("/start"), "Xin chào!"),
        (text("lý lịch tư pháp"), "Giấy tờ cần chụp"),
        (press("req:start"), "Họ và tên người nộp"),  # one receiving agency: no choice
        (text("Nguyễn  Thị   Mai"), "Số điện thoại di động"),
        (Incoming(phone="0912 345 678"), "Giấy tờ 1/3"),
        (photos(1, 2), "Đã nhận 2 ảnh"),  # the most this paper takes: on to the next
        (press("doc:done"), "Cần ít nhất 1 ảnh"),
        (photos(3), "Đã nhận 1 ảnh"),
        (photos(3), "Gửi thêm trang nếu còn"),  # the same photo twice counts once
        (press("doc:done"), "Giấy tờ 3/3"),
        (press("doc:skip"), "Người nộp: Nguyễn Thị Mai\nĐiện thoại: +84912345678"),
        (press("review:submit"), f"Mã số hồ sơ của bạn: {code}"),
        (press("review:submit"), "Bạn muốn làm gì?"),  # a second press submits nothing
        (text(code.lower()), "Đã nộp, chờ cán bộ kiểm tra"),
    ])  # fmt: skip
    dossier = dialogue.backoffice.dossiers[code]
    assert (dossier.name, dossier.phone) == ("Nguyễn Thị Mai", "+84912345678")
    assert {k: len(v) for k, v in dossier.files.items()} == {
        "to_khai": 2, "giay_to_tuy_than": 1, "giay_to_cu_tru": 0
    }  # fmt: skip
    assert len(dialogue.backoffice.dossiers) == 1


def test_a_photo_sent_on_the_requirements_screen_starts_and_is_the_first_page(
    dialogue: Dialogue,
) -> None:
    dialogue.transcript([
        (text(f"/start {BIRTH}"), "Giấy tờ cần chụp"),
        (photos(1), "Đã nhận 1 ảnh cho “Tờ khai đăng ký khai sinh”"),
        (press(f"agency:{WARD}"), "Họ và tên người nộp"),
        (text("Trần Văn Bình"), "Số điện thoại di động"),
        (text("0987654321"), "Đã nhận 1 tệp cho giấy tờ này."),  # the paper already has it
        (press("doc:done"), "Giấy tờ 2/3"),
    ])  # fmt: skip
    assert {k: len(v) for k, v in dialogue.conversation.files.items()} == {"to_khai": 1}


def test_a_refused_photo_keeps_the_steps_buttons(dialogue: Dialogue) -> None:
    for incoming in TO_DOCUMENTS:
        dialogue.send(incoming)
    (answer,) = dialogue.send(Incoming(files=(IncomingFile(images.blurred_jpeg()),)))
    assert "bị mờ" in answer.text or "mờ" in answer.text
    pressed = [b.data for row in answer.buttons for b in row]
    assert pressed == ["doc:done", "nav:back", "nav:cancel"]


def test_supplement_loop(dialogue: Dialogue) -> None:
    code = dialogue.backoffice.add_dossier(BIRTH, WARD).code
    dialogue.transcript([
        (text("/start"), "Bạn muốn làm gì?"),
        (press("menu:supplement"), "Bạn không có hồ sơ nào đang cần bổ sung"),
    ])  # fmt: skip
    dialogue.backoffice.request_supplement(
        code, ("to_khai", "Thiếu chữ ký"), ("giay_chung_sinh", "Ảnh bị lóa")
    )
    dialogue.transcript([
        (press("menu:supplement"), f"Hồ sơ {code} cần bổ sung 2 giấy tờ"),
        (press("doc:done"), "Cần ít nhất 1 ảnh"),  # everything asked for must come back
        (photos(5), "Đã nhận 1 ảnh cho “Tờ khai đăng ký khai sinh”"),
        (press("doc:done"), f"Bổ sung 2/2: {CERTIFICATE}\nLý do: Ảnh bị lóa"),
        (text("đây"), f"hãy gửi ảnh chụp “{CERTIFICATE}”"),
        (photos(6, 7), "Đã nhận 2 ảnh"),
        (press("doc:done"), f"Phần bổ sung cho hồ sơ {code}"),
        (text("gửi"), f"Phần bổ sung cho hồ sơ {code}"),  # only the button sends
        (press("sup:send"), f"Đã gửi phần bổ sung cho hồ sơ {code}"),
        (press("menu:supplement"), "Bạn không có hồ sơ nào đang cần bổ sung"),
    ])  # fmt: skip
    dossier = dialogue.backoffice.dossiers[code]
    assert dossier.status == Status.RESUBMITTED and dialogue.conversation.step == Step.MENU
    assert {k: len(v) for k, v in dossier.files.items()} == {"to_khai": 1, "giay_chung_sinh": 2}


# ---------------------------------------------------------------------------- a shared location

# Hand-checked (haversine, R = 6,371 km; e.g. to Tân Ninh: 0.0140° of latitude = 1.557 km and
# 0.0289° of longitude at 11.30° N = 3.151 km, √(1.557² + 3.151²) = 3.51 km). The agencies are at
# (11.3105, 106.0988) Tân Ninh, (10.5359, 106.4129) Long An, (11.2206, 105.9742) Hòa Hội.
CAO_DAI_HOLY_SEE = (11.2965, 106.1277)  # Tân Ninh 3.51 km, Hòa Hội 18.75 km, Long An 90.13 km
NEAR_TAN_AN = (10.5400, 106.4000)  # Long An 1.48 km, Hòa Hội 88.82 km, Tân Ninh 91.77 km
TAN_NINH, LONG_AN, HOA_HOI = "000.20.01.H53", "000.20.02.H53", "000.20.03.H53"


def _agency_buttons(reply: Reply) -> list[str]:
    return [b.data for row in reply.buttons for b in row]


def test_a_location_at_the_agency_step_lists_the_centres_nearest_first(
    dialogue: Dialogue,
) -> None:
    dialogue.send(text(f"/start {BIRTH}"))
    (question,) = dialogue.send(press("req:start"))
    assert "hoặc gửi vị trí của bạn" in question.text and question.ask_location
    (near,) = dialogue.send(Incoming(location=CAO_DAI_HOLY_SEE))
    assert near.text.splitlines()[1:4] == [
        "1. Trung tâm Phục vụ hành chính công phường Tân Ninh — ~3,5 km",
        "2. Trung tâm Phục vụ hành chính công xã Hòa Hội — ~19 km",
        "3. Trung tâm Phục vụ hành chính công phường Long An — ~90 km",
    ]
    assert _agency_buttons(near) == [
        f"agency:{TAN_NINH}", f"agency:{HOA_HOI}", f"agency:{LONG_AN}", "nav:back"
    ]
    assert dialogue.conversation.step == Step.CHOOSE_AGENCY and not near.ask_location
    (again,) = dialogue.send(RELOAD)  # asked again (Zalo's "more"), the same order
    assert again == near
    (elsewhere,) = dialogue.send(Incoming(location=NEAR_TAN_AN))  # sent again from elsewhere
    assert _agency_buttons(elsewhere)[:3] == [
        f"agency:{LONG_AN}", f"agency:{HOA_HOI}", f"agency:{TAN_NINH}"
    ]
    assert "1. Trung tâm Phục vụ hành chính công phường Long An — ~1,5 km" in elsewhere.text
    assert "~92 km" in elsewhere.text
    assert "Họ và tên người nộp" in said(dialogue.send(press(f"agency:{HOA_HOI}")))
    assert dialogue.conversation.agency == HOA_HOI
    assert dialogue.conversation.near == {}  # where the citizen was is not kept past the choice


def test_distances_are_shown_in_the_citizens_language(dialogue: Dialogue) -> None:
    dialogue.send(text(f"/start {BIRTH}"))
    dialogue.send(press("menu:language"))
    dialogue.send(press("req:start"))
    (near,) = dialogue.send(Incoming(location=CAO_DAI_HOLY_SEE))
    assert "1. Tân Ninh Ward Public Administration Service Centre — ~3.5 km" in near.text


def test_centres_without_a_known_place_come_last_and_none_known_says_so(
    catalog: Catalog,
) -> None:
    unplaced = {TAN_NINH: None, HOA_HOI: None}
    agencies = {code: replace(a, location=unplaced.get(code, a.location))
                for code, a in catalog.agencies.items()}  # fmt: skip
    dialogue = Dialogue(replace(catalog, agencies=agencies))
    dialogue.send(text(f"/start {BIRTH}"))
    dialogue.send(press("req:start"))
    (near,) = dialogue.send(Incoming(location=CAO_DAI_HOLY_SEE))
    assert near.text.splitlines()[1:4] == [
        "1. Trung tâm Phục vụ hành chính công phường Long An — ~90 km",
        "2. Trung tâm Phục vụ hành chính công phường Tân Ninh — chưa có vị trí",
        "3. Trung tâm Phục vụ hành chính công xã Hòa Hội — chưa có vị trí",
    ]

    agencies = {code: replace(a, location=None) for code, a in catalog.agencies.items()}
    dialogue = Dialogue(replace(catalog, agencies=agencies))
    dialogue.send(text(f"/start {BIRTH}"))
    dialogue.send(press("req:start"))
    sorry, question = dialogue.send(Incoming(location=CAO_DAI_HOLY_SEE))
    assert "Chưa có vị trí của các nơi tiếp nhận" in sorry.text
    assert _agency_buttons(question)[:3] == [f"agency:{TAN_NINH}", f"agency:{LONG_AN}",
                                             f"agency:{HOA_HOI}"]  # fmt: skip
    assert dialogue.conversation.step == Step.CHOOSE_AGENCY
