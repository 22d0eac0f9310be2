"""Each SQL view returns the right numbers on a small, hand-checked dataset."""

from __future__ import annotations

import pytest

from hs_sync import registry
from hs_sync.load.transform import transform
from hs_sync.warehouse import Warehouse
from tests.warehouse_helpers import land, query

EXP = "exp_v"
T = "2024-05-01T10:{:02d}:{:02d}Z"


def ev(i, room, pt, category, event_type, response=None, role="host", onset=0):
    return {"id": f"evt_{i}", "experimentId": EXP, "roomId": room, "participantId": pt,
            "onset": onset, "timestamp": T.format(0, i), "category": category,
            "eventType": event_type, "componentType": None, "content": None, "stateId": "s1",
            "stateName": "Intro", "participantRole": role, "response": response}  # fmt: skip


def room(rid, dep, status, started, completed, n):
    return {"id": rid, "experimentId": EXP, "deploymentId": dep,
            "deploymentName": "main" if dep == "dep_m" else "pilot", "status": status,
            "participantCount": n, "createdAt": T.format(0, 0), "startedAt": started,
            "completedAt": completed, "updatedAt": T.format(30, 0)}  # fmt: skip


def person(pid, rid, dep, role, status, code):
    return {"id": pid, "experimentId": EXP, "roomId": rid, "deploymentId": dep, "email": None,
            "role": role, "status": status, "joinedAt": T.format(0, 1),
            "completedAt": None, "completionCode": code}  # fmt: skip


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = Warehouse(tmp_path_factory.mktemp("views") / "wh").create()
    land(wh, "experiments", [{"id": EXP, "name": "Views study", "roomCount": 3}], experiment="_all")
    land(wh, "deployments", [
        {"id": "dep_p", "experimentId": EXP, "name": "pilot", "status": "closed",
         "participantCount": 1, "createdAt": T.format(0, 0)},
        {"id": "dep_m", "experimentId": EXP, "name": "main", "status": "active",
         "participantCount": 3, "createdAt": T.format(0, 0)},
    ], experiment=EXP)  # fmt: skip
    land(wh, "rooms", [
        room("room_1", "dep_m", "completed", T.format(0, 0), T.format(10, 0), 2),
        room("room_2", "dep_m", "completed", T.format(0, 0), T.format(20, 0), 1),
        room("room_3", "dep_p", "active", T.format(0, 0), None, 1),
    ])  # fmt: skip
    land(wh, "participants", [
        person("pA", "room_1", "dep_m", "host", "completed", "SUCCESS"),
        person("pB", "room_1", "dep_m", "guest", "completed", "SUCCESS"),
        person("pC", "room_2", "dep_m", "host", "timed_out", "TIMEOUT"),
        person("pD", "room_3", "dep_p", "host", "active", "IN_PROGRESS"),
    ])  # fmt: skip
    check = "instructions.comprehension_check"
    land(wh, "events", [
        ev(1, "room_1", "pA", "pre_experiment", check,
           {"attempt": 1, "correct": False, "answer": "A"}, onset=-9000),
        ev(2, "room_1", "pA", "pre_experiment", check,
           {"attempt": 2, "correct": True, "answer": "B"}, onset=-4000),
        ev(3, "room_1", "pB", "pre_experiment", check,
           {"attempt": 1, "correct": False, "answer": "C"}, role="guest", onset=-5000),
        ev(4, "room_1", "pA", "questionnaire", "questionnaire.response",
           {"questionId": "q1", "question": "How engaged were you?", "answer": 5, "scale": 7}),
        ev(5, "room_1", "pB", "questionnaire", "questionnaire.response",
           {"questionId": "q_free", "question": "Anything else?", "answer": "Très bien"},
           role="guest"),
        ev(6, "room_2", "pC", "component", "component.complete", {"durationMs": 100}),
    ])  # fmt: skip
    land(wh, "sync", [
        {"experimentId": EXP, "roomId": "room_1", "participantId": "pB",
         "timestamp": T.format(1, i), "timeDrift": d, "playbackRate": 1.0,
         "syncQuality": 0.9, "latency": 40}
        for i, d in enumerate([50, -150, 700, 80])
    ])  # fmt: skip
    land(wh, "ratings_continuous", [
        {"experimentId": EXP, "roomId": "room_1", "participantId": "pA", "componentId": "c1",
         "timestamp": T.format(2, i), "onset": onset, "value": value}
        for i, (onset, value) in enumerate([(0, 10.0), (300, 20.0), (1100, 30.0)])
    ])  # fmt: skip
    land(wh, "ratings_sparse", [
        {"ratingId": "rat_1", "experimentId": EXP, "roomId": "room_1", "participantId": "pA",
         "timestamp": T.format(3, 0), "onset": 100, "value": 4},
        {"ratingId": "rat_2", "experimentId": EXP, "roomId": "room_1", "participantId": "pB",
         "timestamp": T.format(3, 1), "onset": 200, "value": 6},
    ])  # fmt: skip
    summary = transform(wh, registry.DATA_TYPES)
    assert summary["quarantined"] == 0
    return wh


def test_dashboard_deployments(wh):
    rows = query(wh, "SELECT deployment_name, status, participant_count, rooms_synced, "
                     "participants_synced, experiment_name FROM dashboard_deployments ORDER BY 1")  # fmt: skip
    assert rows == [("main", "active", 3, 2, 3, "Views study"),
                    ("pilot", "closed", 1, 1, 1, "Views study")]  # fmt: skip


def test_dashboard_rooms(wh):
    rows = query(wh, "SELECT room_id, deployment_name, status, participant_count, duration_s "
                     "FROM dashboard_rooms ORDER BY 1")  # fmt: skip
    assert rows == [("room_1", "main", "completed", 2, 600.0),
                    ("room_2", "main", "completed", 1, 1200.0),
                    ("room_3", "pilot", "active", 1, None)]  # fmt: skip


def test_dashboard_participants(wh):
    rows = query(wh, "SELECT participant_id, role, completion_code, events, data_types "
                     "FROM dashboard_participants ORDER BY 1")  # fmt: skip
    assert rows == [
        ("pA", "host", "SUCCESS", 3, ["events", "ratings_continuous", "ratings_sparse"]),
        ("pB", "guest", "SUCCESS", 2, ["events", "ratings_sparse", "sync"]),
        ("pC", "host", "TIMEOUT", 1, ["events"]),
        ("pD", "host", "IN_PROGRESS", 0, []),
    ]


def test_events_enriched(wh):
    rows = query(wh, "SELECT id, deployment_name, role, completion_code FROM events_enriched "
                     "WHERE id IN ('evt_3', 'evt_6') ORDER BY id")  # fmt: skip
    assert rows == [("evt_3", "main", "guest", "SUCCESS"), ("evt_6", "main", "host", "TIMEOUT")]


def test_questionnaire_responses(wh):
    rows = query(wh, "SELECT participant_id, question_id, question, answer, answer_value, "
                     "scale_points FROM questionnaire_responses ORDER BY 1")  # fmt: skip
    assert rows == [("pA", "q1", "How engaged were you?", "5", 5.0, 7),
                    ("pB", "q_free", "Anything else?", "Très bien", None, None)]  # fmt: skip


def test_comprehension_checks(wh):
    attempts = query(wh, "SELECT participant_id, attempt, answer, correct "
                         "FROM comprehension_attempts ORDER BY 1, 2")  # fmt: skip
    assert attempts == [("pA", 1, "A", False), ("pA", 2, "B", True), ("pB", 1, "C", False)]
    rows = query(wh, "SELECT participant_id, attempts, correct_attempts, score, passed, result "
                     "FROM comprehension_checks ORDER BY 1")  # fmt: skip
    assert rows == [("pA", 2, 1, 0.5, True, "pass"), ("pB", 1, 0, 0.0, False, "fail")]


def test_sync_quality(wh):
    classes = query(wh, "SELECT timeDrift, quality_class FROM sync_samples ORDER BY timestamp")
    assert classes == [(50.0, "good"), (-150.0, "acceptable"), (700.0, "poor"), (80.0, "good")]
    rows = query(wh, "SELECT room_id, participant_id, samples, median_abs_drift_ms, share_good, "
                     "share_acceptable, share_poor, quality_class FROM sync_quality")  # fmt: skip
    assert rows == [("room_1", "pB", 4, 115.0, 0.5, 0.25, 0.25, "acceptable")]


def test_continuous_ratings_grid(wh):
    rows = query(wh, "SELECT participant_id, component_id, grid_onset, value, sample_age_ms "
                     "FROM ratings_continuous_grid ORDER BY grid_onset")  # fmt: skip
    assert rows == [("pA", "c1", 0, 10.0, 0), ("pA", "c1", 500, 20.0, 200),
                    ("pA", "c1", 1000, 20.0, 700)]  # fmt: skip


def test_deployment_summary(wh):
    rows = query(wh, "SELECT deployment_name, rooms, participants, completed_success, "
                     "completion_codes, median_session_duration_s, sparse_ratings, "
                     "sparse_rating_mean, continuous_samples, continuous_rating_mean, "
                     "sync_samples, share_poor_sync FROM deployment_summary ORDER BY 1")  # fmt: skip
    assert rows == [
        ("main", 2, 3, 2, {"SUCCESS": 2, "TIMEOUT": 1}, 900.0, 2, 5.0, 3, 20.0, 4, 0.25),
        ("pilot", 1, 1, 0, {"IN_PROGRESS": 1}, None, 0, None, 0, None, 0, None),
    ]


def test_views_come_from_plain_sql_files(wh):
    from hs_sync.load.duck import view_files

    names = {r[0] for r in query(wh, "SELECT view_name FROM duckdb_views() WHERE NOT internal")}
    for path in view_files():
        text = path.read_text()
        for line in text.splitlines():
            if line.startswith("CREATE OR REPLACE VIEW"):
                assert line.split()[4] in names
