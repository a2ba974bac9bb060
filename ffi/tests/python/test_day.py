"""A day in a village through the Python bindings: an encrypted store, a class, trainees, QR sign-in
between two phones, sync against a real server (built-in and app-driven), and errors as
exceptions."""

import asyncio
import datetime
import json
import os
import urllib.request

import pytest

import songpei_ffi as sp

from conftest import VILLAGE

NAME = "张秀英"
ID_NUMBER = "450802198503120028"


def key():
    return os.urandom(32)


def china_now():
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=8)


class Collect(sp.Logger):
    def __init__(self):
        self.lines = []

    def log(self, level, target, message):
        self.lines.append((level, target, message))


LOGS = Collect()
assert sp.set_logger(LOGS, sp.LogLevel.DEBUG)


def class_input(day):
    start = max(china_now().hour - 1, 0)
    return sp.ClassInput(
        title="大湾村电工培训班",
        village=VILLAGE,
        occupation="电工",
        level="初级工",
        training_type="就业技能培训",
        subsidised=True,
        first_day=day,
        last_day=day,
        daily_hours=8.0,
        starts_at=f"{start:02d}:00",
        sign_out_required=False,
        venue="村委会",
        venue_gps=sp.GpsFix(lat=23.1, lon=109.6, accuracy_m=None),
        institution=None,
        instructors=["陈师傅"],
        planned_size=20,
    )


def trainee_input(name, id_number, poverty):
    return sp.TraineeInput(
        name=name,
        id_number=id_number,
        phone="13812345678",
        village=VILLAGE,
        household_id=None,
        new_household_poverty=poverty,
        key_groups=["妇女"],
        training_wish=None,
        consent_at_ms=0,
    )


def test_a_whole_day(server, tmp):
    k = key()
    coord = sp.SongpeiPhone.open(str(tmp / "coordinator.db"), k)
    assert not coord.is_set_up()
    enrolled = asyncio.run(coord.enroll(server.url, server.enrollment_code("wang")))
    assert enrolled.district == "450802"
    assert enrolled.villages == [VILLAGE]
    assert coord.is_set_up()

    # The class's instructor, with a phone of their own.
    instructor = sp.SongpeiPhone.open(str(tmp / "instructor.db"), key())
    asyncio.run(instructor.enroll(server.url, server.enrollment_code("chen", "instructor")))
    asyncio.run(coord.sync(None))
    assert [i.username for i in coord.instructors()] == ["chen"]

    day = china_now().strftime("%Y-%m-%d")
    cls = coord.create_class(sp.ClassInput(**{**class_input(day).__dict__, "instructor_accounts": ["chen"]}))
    t1 = coord.add_trainee(trainee_input(NAME, ID_NUMBER, "脱贫户"))
    t2 = coord.add_trainee(trainee_input("李建国", "450802197911230037", None))
    decision = coord.enrol(cls, t1)
    assert decision.subsidised and decision.decision == "subsidised"
    assert (decision.year, decision.nth) == (int(day[:4]), 1)
    coord.enrol(cls, t2)
    assert coord.find_trainee(ID_NUMBER) == t1
    masked = json.loads(coord.trainee_view_json(t1, False))
    assert masked["id_number"] != ID_NUMBER and masked["poverty_status"] == "lifted"
    assert json.loads(coord.trainee_view_json(t1, True))["id_number"] == ID_NUMBER
    summary = asyncio.run(coord.sync(None))
    assert summary.docs_pushed >= 4

    # The trainee's phone key is registered to the trainee in person: the trainee's phone shows its
    # claim, the instructor witnesses it, the coordinator's phone files it.
    asyncio.run(instructor.sync(None))
    trainee_phone = sp.SongpeiPhone.open(str(tmp / "trainee.db"), key())
    claim = trainee_phone.key_claim(t1)
    assert isinstance(sp.scan(claim.text), sp.ScannedCode.KEY_CLAIM)
    witnessed = instructor.witness(claim.text, cls, day)
    assert sp.scan(witnessed.text).class_id == cls
    with pytest.raises(sp.SongpeiError.BadInput):
        coord.witness(claim.text, cls, day)
    filed = coord.register_key(witnessed.text)
    assert filed.registered and filed.trainee_id == t1

    # QR sign-in between two phones, offline.
    code = coord.class_code(cls, day, sp.SignKind.IN)
    assert code.text.startswith("SP:")
    assert sp.decode_image(code.png) == [code.text]
    scanned = sp.scan(code.text)
    assert isinstance(scanned, sp.ScannedCode.CLASS_CODE)
    assert scanned.class_id == cls
    answer = trainee_phone.respond(code.text, t1, sp.GpsFix(lat=23.1002, lon=109.6, accuracy_m=20.0))
    assert sp.scan(answer.text).trainee_id == t1
    result = coord.accept(answer.text, sp.GpsFix(lat=23.1001, lon=109.6001, accuracy_m=10.0), None, None, sp.SignKind.IN)
    assert result.recorded and result.trainee_id == t1 and result.time_verified
    assert result.key_registered
    again = coord.accept(answer.text, None, None, None, sp.SignKind.IN)
    assert not again.recorded

    coord.record_by_hand(cls, t2, day, sp.SignKind.IN, "手机没电", None)
    view = json.loads(coord.class_view_json(cls))
    roster = {r["trainee_id"]: r for r in view["roster"]}
    assert roster[t1]["payable_days"] == 1
    assert roster[t1]["allowance_fen"] == 5000
    assert roster[t1]["name_masked"] != NAME

    # The app's own HTTP client drives a sync round.
    prepared = coord.prepare_sync()
    assert prepared is not None
    req = urllib.request.Request(
        prepared.url,
        data=bytes(prepared.body),
        headers={
            "Authorization": f"Bearer {prepared.token}",
            "Content-Type": "application/vnd.songpei.sync.v1+postcard",
        },
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        round_ = coord.apply_sync_response(resp.read())
    assert round_.docs_pushed == 1

    # The server checked the proof: nothing flagged.
    assert "0 flags" in server.admin("flags", "--class", cls)

    coord.complete(cls, t1, "passed", "training")
    coord.set_class_status(cls, "closed")
    assert [c.status for c in coord.classes()] == ["closed"]
    assert coord.conflicts() == []

    # Nothing personal reached the logs.
    text = "\n".join(m for _, _, m in LOGS.lines)
    assert NAME not in text and ID_NUMBER not in text


def test_errors_arrive_as_exceptions(server, tmp):
    k = key()
    p = sp.SongpeiPhone.open(str(tmp / "p.db"), k)
    with pytest.raises(sp.SongpeiError.NotSetUp):
        p.classes()
    p.set_up_offline("450802", [VILLAGE])
    with pytest.raises(sp.SongpeiError.BadInput) as e:
        p.add_trainee(trainee_input(NAME, "450802198503120027", None))
    assert e.value.field == "id_number"
    assert "450802198503120027" not in str(e.value)
    with pytest.raises(sp.SongpeiError.BadInput) as e:
        p.create_class(sp.ClassInput(**{**class_input("2026-03-02").__dict__, "level": "宗师"}))
    assert e.value.field == "level"
    with pytest.raises(sp.SongpeiError.BadInput):
        sp.scan("SP:not a code")
    with pytest.raises(sp.SongpeiError.BadInput):
        p.accept("SP:" + "0" * 10, None, None, None, sp.SignKind.IN)
    with pytest.raises(sp.SongpeiError.NotEnrolled):
        asyncio.run(p.sync(None))
    enrolled = sp.SongpeiPhone.open(str(tmp / "e.db"), key())
    asyncio.run(enrolled.enroll(server.url, server.enrollment_code("li")))
    with pytest.raises(sp.SongpeiError.Network):
        asyncio.run(enrolled.sync("http://127.0.0.1:9"))
    del p
    with pytest.raises(sp.SongpeiError.WrongKey):
        sp.SongpeiPhone.open(str(tmp / "p.db"), key())
    with pytest.raises(sp.SongpeiError.WrongKey):
        sp.SongpeiPhone.open(str(tmp / "q.db"), b"short")
    with pytest.raises(sp.SongpeiError.Refused) as e:
        asyncio.run(sp.SongpeiPhone.open(str(tmp / "r.db"), key()).enroll(server.url, "WRONG-CODE-1"))
    assert e.value.status == 401
