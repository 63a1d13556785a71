"""The citizen dialogue as transcripts: what the citizen does, what the bot answers.

The back office is the real one (SQLite + media on disk), so a submission really creates a
dossier with a code and a QR code that decodes to its lookup URL.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.calendar import WorkingCalendar
from core.catalog import Catalog
from core.conversation import Incoming, IncomingFile
from core.dossier import Action, Actor, Command, MissingItem
from core.flows import NO_ONESTOP
from core.notices import rating_buttons
from core.replies import Reply
from storage.db import make_engine, session_scope
from storage.dossiers import apply_command
from storage.intake import converse
from storage.media import DiskMediaStore
from storage.models import Citizen, DocumentFile, Dossier, Feedback, Rating
from tests import images

BASE = "https://hcc.example.vn"
NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


class Chat:
    """One citizen talking to the bot; every turn goes through storage like a real channel."""

    def __init__(self, engine: Engine, catalog: Catalog, calendar: WorkingCalendar, media: Path):
        self.engine, self.catalog, self.calendar = engine, catalog, calendar
        self.media = DiskMediaStore(media)
        self.external_id = "citizen-1"

    def send(self, text: str = "", **kwargs: object) -> list[Reply]:
        incoming = Incoming(text=text, **kwargs)  # type: ignore[arg-type]
        with session_scope(self.engine) as session:
            return converse(
                session,
                channel="telegram",
                external_id=self.external_id,
                incoming=incoming,
                catalog=self.catalog,
                calendar=self.calendar,
                rules=NO_ONESTOP,
                media=self.media,
                public_base_url=BASE,
                now=NOW,
            )

    def press(self, data: str) -> list[Reply]:
        return self.send(button=data)

    def photos(self, *datas: bytes) -> list[Reply]:
        return self.send(files=tuple(IncomingFile(d) for d in datas))


def said(replies: list[Reply]) -> str:
    return "\n".join(reply.text for reply in replies)


def buttons(replies: list[Reply]) -> list[str]:
    return [b.data for reply in replies for row in reply.buttons for b in row]


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def chat(engine: Engine, catalog: Catalog, calendar: WorkingCalendar, tmp_path: Path) -> Chat:
    return Chat(engine, catalog, calendar, tmp_path / "media")


def first_agency(chat: Chat, slug: str) -> str:
    procedure = chat.catalog.procedure_by_slug(slug)
    return f"agency:{chat.catalog.receiving_agencies(procedure)[0].code}"


def to_documents(chat: Chat, slug: str) -> None:
    """Deep link to a procedure and answer everything up to its first paper."""
    chat.send(f"/start {slug}")
    chat.press("req:start")
    chat.press(first_agency(chat, slug))
    chat.send("Trần Văn Bình")
    assert "Giấy tờ 1/" in said(chat.send("0987654321"))


def submit_through(chat: Chat, slug: str, *, search: str) -> list[Reply]:
    """The happy path for one procedure: every required paper photographed, then submitted."""
    procedure = chat.catalog.procedure_by_slug(slug)
    assert "Xin chào" in said(chat.send("/start"))
    replies = chat.send(search)
    assert procedure.name.vi in said(replies)
    if "req:start" not in buttons(replies):
        replies = chat.press(f"proc:{procedure.code}")
    assert "Giấy tờ cần chụp" in said(replies)
    replies = chat.press("req:start")
    agencies = chat.catalog.receiving_agencies(procedure)
    if len(agencies) > 1:
        assert buttons(replies)[: len(agencies)] == [f"agency:{a.code}" for a in agencies]
        replies = chat.press(f"agency:{agencies[-1].code}")
    assert "Họ và tên" in said(replies)
    assert "Số điện thoại" in said(chat.send("Nguyễn Thị Mai"))
    replies = chat.send(phone="0912 345 678")
    for index, component in enumerate(procedure.components):
        assert component.name.vi in said(replies)
        if component.required:
            replies = chat.photos(images.good_jpeg(seed=index))
            assert "Đã nhận 1 ảnh" in said(replies)
            if "doc:done" in buttons(replies):
                replies = chat.press("doc:done")
        else:
            replies = chat.press("doc:skip")
    assert "Kiểm tra lại trước khi nộp" in said(replies)
    assert "+84912345678" in said(replies)
    return chat.press("review:submit")


@pytest.mark.parametrize(
    ("slug", "search"),
    [
        ("khai-sinh", "khai sinh con"),
        ("khai-tu", "khai tử"),
        ("ho-kinh-doanh", "ho kinh doanh"),
        ("thay-doi-dang-ky-thue", "thuế"),
        ("ly-lich-tu-phap", "ly lich tu phap"),
    ],
)
def test_happy_path_for_each_procedure(chat: Chat, engine: Engine, slug: str, search: str) -> None:
    replies = submit_through(chat, slug, search=search)
    text = said(replies)
    assert "Đã nộp hồ sơ" in text
    with Session(engine) as session:
        dossier = session.execute(select(Dossier)).scalar_one()
        files = session.execute(select(DocumentFile)).scalars().all()
        citizen = session.get(Citizen, dossier.citizen_id)
    assert dossier.code in text and f"HS {dossier.code}" in text
    assert dossier.status == "submitted"
    procedure = chat.catalog.procedure_by_slug(slug)
    assert len(files) == sum(1 for c in procedure.components if c.required)
    assert all(chat.media.exists(f.media_key) for f in files)
    assert citizen is not None and citizen.full_name == "Nguyễn Thị Mai"
    qr = next(r.image_png for r in replies if r.image_png)
    decoded = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(qr)))]
    assert decoded == [f"{BASE}/lookup/{dossier.code}"]


def test_pressing_submit_twice_makes_one_dossier(chat: Chat, engine: Engine) -> None:
    submit_through(chat, "ho-kinh-doanh", search="ho kinh doanh")
    again = chat.press("review:submit")
    assert "Đã nộp hồ sơ" not in said(again)
    with Session(engine) as session:
        assert len(session.execute(select(Dossier)).scalars().all()) == 1


def test_bad_files_say_what_to_retake_and_change_nothing(chat: Chat) -> None:
    to_documents(chat, "ho-kinh-doanh")
    cases = [
        (images.blurred_jpeg(), "ảnh bị mờ"),
        (images.dark_jpeg(), "ảnh quá tối"),
        (images.tiny_jpeg(), "ảnh quá nhỏ"),
        (b"not an image", "không phải ảnh hoặc tệp PDF"),
        (images.bomb_png(), "kích thước bất thường"),
    ]
    for data, reason in cases:
        text = said(chat.photos(data))
        assert reason in text
        assert "Đã nhận" not in text
    # Nothing was kept: "done" still asks for the paper.
    assert "Cần ít nhất 1 ảnh" in said(chat.press("doc:done"))


def test_an_album_gets_one_answer(chat: Chat) -> None:
    to_documents(chat, "ho-kinh-doanh")
    replies = chat.photos(images.good_jpeg(1), images.good_jpeg(2), images.blurred_jpeg())
    assert len(replies) == 1
    assert "Đã nhận 2 ảnh" in replies[0].text and "Ảnh thứ 3" in replies[0].text


def test_unexpected_input_gets_a_hint_for_the_current_step(chat: Chat) -> None:
    to_documents(chat, "khai-sinh")
    text = said(chat.send("đây là tờ khai"))
    assert "hãy gửi ảnh chụp “Tờ khai đăng ký khai sinh”" in text
    sticker = chat.send(unsupported=True)
    assert "chưa hiểu" in said(sticker) and "Tờ khai đăng ký khai sinh" in said(sticker)
    assert "Số điện thoại di động" in said(chat.press("nav:back"))
    assert "Số điện thoại chưa đúng" in said(chat.send("12345"))


def test_back_and_cancel_work_everywhere(chat: Chat, engine: Engine) -> None:
    chat.send("/start khai-sinh")
    chat.press("req:start")
    chat.press(first_agency(chat, "khai-sinh"))
    assert "Giấy tờ cần chụp" in said(chat.send("quay lại"))  # name → requirements
    chat.press("req:start")
    chat.press(first_agency(chat, "khai-sinh"))
    chat.send("Phạm Thị Dung")
    assert "Họ và tên" in said(chat.press("nav:back"))  # phone → name
    assert "Đã hủy" in said(chat.send("Hủy"))
    assert "menu:submit" in buttons(chat.send("menu"))
    with Session(engine) as session:
        assert session.execute(select(Dossier)).first() is None


def test_lookup_by_code_and_my_dossiers(chat: Chat, engine: Engine) -> None:
    submit_through(chat, "khai-sinh", search="khai sinh")
    with Session(engine) as session:
        code = session.execute(select(Dossier.code)).scalar_one()
    assert "Đã nộp, chờ cán bộ kiểm tra" in said(chat.send(code.lower()))
    chat.press("menu:lookup")
    assert "Không tìm thấy hồ sơ" in said(chat.send(code.replace("0001", "0077")))
    mine = said(chat.press("menu:mine"))
    assert code in mine and "Đăng ký khai sinh" in mine
    other = Chat(chat.engine, chat.catalog, chat.calendar, chat.media.root)
    other.external_id = "someone-else"
    assert "chưa có hồ sơ" in said(other.press("menu:mine"))  # only their own


def test_english(chat: Chat) -> None:
    chat.send("/start")
    labels = [b.label for r in chat.press("menu:language") for row in r.buttons for b in row]
    assert labels[0] == "📝 Submit a dossier"
    assert "Papers to photograph" in said(chat.send("birth"))


def test_supplement_loop_keeps_the_code_and_sends_only_what_was_asked(
    chat: Chat, engine: Engine
) -> None:
    submit_through(chat, "ho-kinh-doanh", search="ho kinh doanh")
    with Session(engine) as session:
        dossier = session.execute(select(Dossier)).scalar_one()
    procedure = chat.catalog.procedure(dossier.procedure_code)
    asked = procedure.components[1]
    assert dossier.id is not None
    with session_scope(engine) as session:
        apply_command(
            session,
            dossier.id,
            Command(
                Action.REQUEST_SUPPLEMENT,
                Actor.DESK_OFFICER,
                NOW,
                missing=(MissingItem(asked.code, "Ảnh CCCD bị lóa, chụp lại mặt sau"),),
            ),
            catalog=chat.catalog,
            calendar=chat.calendar,
            rules=NO_ONESTOP,
        )
    replies = chat.press("menu:supplement")
    text = said(replies)
    assert dossier.code in text and "Bổ sung 1/1" in text
    assert asked.name.vi in text and "chụp lại mặt sau" in text
    assert "Cần ít nhất 1 ảnh" in said(chat.press("doc:done"))  # nothing sent yet
    chat.photos(images.good_jpeg(seed=42))
    assert "Phần bổ sung cho hồ sơ" in said(chat.press("doc:done"))
    assert dossier.code in said(chat.press("sup:send"))
    with Session(engine) as session:
        after = session.get(Dossier, dossier.id)
        files = (
            session.execute(
                select(DocumentFile).where(DocumentFile.component_code == asked.code)  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
    assert after is not None and after.status == "resubmitted" and after.code == dossier.code
    assert len(files) == 2  # the first photo and the supplement
    assert "không có hồ sơ nào đang cần bổ sung" in said(chat.press("menu:supplement"))


def _finish(chat: Chat, engine: Engine, dossier_id: int) -> None:
    """The desk takes the dossier to its end: accepted, forwarded, result ready, returned."""
    for action in (Action.ACCEPT, Action.FORWARD, Action.RESULT_READY, Action.RETURN_RESULT):
        with session_scope(engine) as session:
            apply_command(
                session,
                dossier_id,
                Command(action, Actor.DESK_OFFICER, NOW),
                catalog=chat.catalog,
                calendar=chat.calendar,
                rules=NO_ONESTOP,
            )


def test_rating_after_the_dossier_ends_once_and_only_own(chat: Chat, engine: Engine) -> None:
    submit_through(chat, "khai-tu", search="khai tử")
    with Session(engine) as session:
        dossier = session.execute(select(Dossier)).scalar_one()
    assert dossier.id is not None
    assert "Không thể ghi nhận" in said(chat.press(f"rate:{dossier.code}:5"))  # not ended yet
    _finish(chat, engine, dossier.id)
    stranger = Chat(chat.engine, chat.catalog, chat.calendar, chat.media.root)
    stranger.external_id = "someone-else"
    assert "Không thể ghi nhận" in said(stranger.press(f"rate:{dossier.code}:1"))
    assert "Cảm ơn bạn đã đánh giá" in said(chat.press(f"rate:{dossier.code}:4"))
    chat.send("Cán bộ hướng dẫn rất tận tình")
    assert "Không thể ghi nhận" in said(chat.press(f"rate:{dossier.code}:1"))  # only once
    with Session(engine) as session:
        rating = session.execute(select(Rating)).scalar_one()
    assert (rating.stars, rating.comment) == (4, "Cán bộ hướng dẫn rất tận tình")
    assert buttons([Reply("", rating_buttons(dossier.code, "vi"))])[-1] == f"rate:{dossier.code}:5"


def test_feedback_with_a_photo_is_stored_for_staff(chat: Chat, engine: Engine) -> None:
    chat.send("/start")
    assert "viết phản ánh, kiến nghị" in said(chat.press("menu:feedback"))
    replies = chat.send("Đường vào trung tâm bị ngập", files=(IncomingFile(images.good_jpeg(7)),))
    assert "Cảm ơn bạn. Phản ánh đã được ghi nhận" in said(replies)
    with Session(engine) as session:
        feedback = session.execute(select(Feedback)).scalar_one()
    assert feedback.text == "Đường vào trung tâm bị ngập" and len(feedback.media_keys) == 1
    assert chat.media.exists(feedback.media_keys[0])


CARD = "079123456789|123456789|Nguyễn Thị Mai|15041990|Nữ|12 Trần Hưng Đạo, Tây Ninh|01012022"


def test_a_cccd_photo_fills_the_name_and_keeps_only_what_the_procedure_needs(
    chat: Chat, engine: Engine
) -> None:
    chat.send("/start khai-sinh")
    chat.press("req:start")
    chat.press(first_agency(chat, "khai-sinh"))
    assert "Không đọc được mã QR" in said(chat.photos(images.good_jpeg()))  # no QR: a hint
    offer = chat.photos(images.qr_photo(CARD))
    assert "Nguyễn Thị Mai" in said(offer) and "15/04/1990" in said(offer)
    assert buttons(offer) == ["cccd:use", "cccd:type"]
    assert "điện thoại" in said(chat.press("cccd:use")).lower()
    chat.send("0987654321")
    # With the ID number known, the ID card photo (component 3) may be skipped.
    chat.photos(images.good_jpeg(1))
    chat.press("doc:done")
    chat.photos(images.good_jpeg(2))
    replies = chat.press("doc:done")
    assert "doc:skip" in buttons(replies)
    chat.press("doc:skip")
    chat.press("review:submit")
    with Session(engine) as session:
        citizen = session.execute(select(Citizen)).scalar_one()
    assert (citizen.full_name, citizen.id_number) == ("Nguyễn Thị Mai", "079123456789")


def test_typing_the_name_instead_of_the_card_offer(chat: Chat) -> None:
    chat.send("/start khai-sinh")
    chat.press("req:start")
    chat.press(first_agency(chat, "khai-sinh"))
    chat.photos(images.qr_photo(CARD))
    assert "Họ và tên" in said(chat.press("cccd:type"))
    assert "điện thoại" in said(chat.send("Lê Văn Tám")).lower()


def test_a_photo_of_the_receipt_qr_looks_the_dossier_up(chat: Chat) -> None:
    submit_through(chat, "khai-sinh", search="khai sinh")
    chat.send("/start")  # back at the menu
    with Session(chat.engine) as session:
        dossier = session.execute(select(Dossier)).scalar_one()
    receipt = images.qr_photo(f"{BASE}/lookup/{dossier.code}")
    assert dossier.code in said(chat.photos(receipt))  # from the menu
    chat.press("menu:lookup")
    assert dossier.code in said(chat.photos(receipt))  # from the lookup step
    assert "Không tìm thấy mã QR" in said(chat.photos(images.good_jpeg()))


def test_the_citizen_answers_the_desk_in_the_dossier_thread(chat: Chat, engine: Engine) -> None:
    from core.notices import notice_reply
    from storage.models import ThreadMessage

    submit_through(chat, "khai-sinh", search="khai sinh")
    with Session(engine) as session:
        dossier = session.execute(select(Dossier)).scalar_one()
    pushed = notice_reply("notice.reply", {"code": dossier.code, "text": "Anh gửi thêm bản chính?"})
    assert f"reply:{dossier.code}" in buttons([pushed])
    assert dossier.code in said(chat.press(f"reply:{dossier.code}"))
    assert "gõ nội dung" in said(chat.photos(images.good_jpeg()))  # a photo is not an answer
    assert "Đã chuyển câu trả lời" in said(chat.send("Dạ, mai tôi mang đến."))
    chat.press("reply:000.00.10.H53-261207-9999")  # a code that is not this citizen's
    assert "Không gửi được" in said(chat.send("hồ sơ của người khác"))
    with Session(engine) as session:
        thread = list(session.execute(select(ThreadMessage)).scalars())
    assert [(m.direction, m.text) for m in thread] == [("in", "Dạ, mai tôi mang đến.")]


def test_a_sticker_or_a_reload_while_writing_feedback_asks_for_the_feedback_again(
    chat: Chat, engine: Engine
) -> None:
    """The menu shown here while the step stayed `feedback` filed the next menu choice
    ("Tra cứu hồ sơ") as feedback to the agency."""
    chat.send("/start")
    chat.press("menu:feedback")
    for unexpected in (chat.send(unsupported=True), chat.press("nav:resume")):
        assert "viết phản ánh, kiến nghị" in said(unexpected)
        assert "menu:submit" not in buttons(unexpected)
    assert "Phản ánh đã được ghi nhận" in said(chat.send("Tra cứu hồ sơ"))
    with Session(engine) as session:
        assert session.execute(select(Feedback.text)).scalar_one() == "Tra cứu hồ sơ"
