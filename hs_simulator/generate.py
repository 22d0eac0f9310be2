"""Deterministic generation of a whole simulated dataset from (seed, scale).

Everything is anchored at a date derived from the seed (never the real clock)
and drawn from `random.Random` instances seeded from (seed, experiment, room),
so the same inputs give byte-identical rows, and adding live-mode rooms never
perturbs historical ones. Rows are JSON-encoded (orjson) as they are made and
handed to `Table.build`, one experiment at a time, to keep peak memory low.

Shape of a session (room): participants join, go through consent and
instructions (events with negative onsets), then the room starts and walks
through the experiment's states; media states play clips that are rated
continuously (a sample every 100-500 ms) or by button press (sparse ratings
that pause the media), multi-participant rooms with synchronized media report
sync metrics for every non-host participant, video-chat experiments produce
LiveKit events and one video and one audio recording per participant.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

import orjson

from .plan import Deployment, Experiment, Feature, Participant, Recording, Room
from .store import Table, TableBuilder
from .timeutil import iso, iso_seconds

DAY = 86_400_000
MINUTE = 60_000

# data type -> extra indexed columns (besides roomId, participantId, deploymentId)
SERIES_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("category", "onset"),
    "ratings/continuous": ("componentId", "onset"),
    "ratings/sparse": ("onset",),
    "chat": (),
    "videochat": (),
    "sync": (),
    "components": ("componentType", "completed", "stateId"),
    "eyetracking": ("onset",),
}
SERIES_TYPES = tuple(SERIES_COLUMNS)
NUMERIC_COLUMNS = frozenset({"onset"})

COMPLETION_CODES = (
    ("SUCCESS", 0.80),
    ("COMPLETED_NO_CODE", 0.05),
    ("ABANDONED", 0.05),
    ("TIMEOUT", 0.04),
    ("NOCONSENT", 0.03),
    ("TECHNICAL", 0.03),
)
STATUS_FOR_CODE = {
    "SUCCESS": "completed",
    "COMPLETED_NO_CODE": "completed",
    "ABANDONED": "left",
    "TIMEOUT": "timed_out",
    "NOCONSENT": "declined",
    "TECHNICAL": "disconnected",
}

# (stateId, stateName, kind, min seconds, max seconds)
STATES = {
    "coview": (
        ("state_welcome", "Welcome", "info", 5, 15),
        ("state_clip1", "Clip 1: Ocean waves", "media_continuous", 10, 18),
        ("state_discuss", "Discussion", "chat", 20, 40),
        ("state_clip2", "Clip 2: City at night", "media_sparse", 20, 30),
        ("state_survey", "Post-viewing survey", "questionnaire", 30, 90),
    ),
    "solo": (
        ("state_welcome", "Welcome", "info", 5, 15),
        ("state_clip1", "Clip 1: Forest", "media_continuous", 10, 18),
        ("state_clip2", "Clip 2: Crowd", "media_sparse", 20, 30),
        ("state_survey", "Questionnaire", "questionnaire", 30, 90),
    ),
    "dyad": (
        ("state_welcome", "Welcome", "info", 5, 15),
        ("state_conversation", "Conversation", "conversation", 60, 120),
        ("state_survey", "Après la conversation", "questionnaire", 30, 90),
    ),
}

EXPERIMENT_SPECS = (
    dict(
        key="coview",
        name="Shared movie viewing",
        description="Groups of 1-4 watch two clips in sync, rate them and discuss in chat.",
        features=Feature(True, True, True, True, False, True),
        sizes=((1, 0.15), (2, 0.40), (3, 0.25), (4, 0.20)),
        roles=("host", "viewer", "viewer", "viewer"),
        rooms=50,
    ),
    dict(
        key="solo",
        name="Solo emotion rating — Ωmega pilot",
        description="",  # empty, not null: the SDK types it a string
        features=Feature(False, False, True, True, True, False),
        sizes=((1, 1.0),),
        roles=("rater",),
        rooms=60,
    ),
    dict(
        key="dyad",
        name="Dyadic conversation",
        description="Two strangers talk for two minutes over video. " * 12,
        features=Feature(False, True, False, False, False, True),
        sizes=((2, 1.0),),
        roles=("speaker", "listener"),
        rooms=36,
    ),
)

CHAT_LINES = (
    "hi!",
    "Did you see that? 😂",
    "¿Qué pasó al final?",
    "これは面白いですね",
    "I think the second clip was calmer",
    "agreed",
    "",
    "ok",
    "Ça m'a rappelé mon enfance… 🌊",
    "Can everyone hear me?",
    "wait my video froze",
    "Long story, but: " + "the ocean scene reminded me of a trip we took years ago. " * 10,
    "مرحبا، هل تسمعونني؟",  # right-to-left
    "I said \u202bשלום לכולם\u202c and left",  # bidi embedding inside left-to-right text
    "first line\u2028second line",  # U+2028 LINE SEPARATOR
    "Cafe\u0301 au lait, pre\u0301fe\u0301re\u0301",  # decomposed accents (NFD)
    "zero\u200bwidth\u200djoin\ufeffBOM\u200c",  # zero-width space, joiners, BOM
)
FREE_TEXT = (
    "It was relaxing.",
    "Sehr spannend!",
    "",
    None,
    "😀😀",
    "No comment",
    "The music made it feel tense — especially near the end, when the camera zoomed "
    "in on the crowd and everything went quiet. " * 4,
    "Не знаю",
    "לא יודע\u2029אולי",  # right-to-left, U+2029 PARAGRAPH SEPARATOR
)
NAMES = (
    "Alex", "Zoë", "李雷", "Jordan", "Mia", "José", "Anaïs", "Sam", "Priya", "Ólafur",
    "Zoe\u0308", "نور", "Lo\u200bgan",
)  # fmt: skip
QUESTIONS = (
    ("q_arousal", "How aroused did you feel?"),
    ("q_valence", "How pleasant was it?"),
    ("q_connect", "How connected did you feel to the others?"),
)
# integers a float64 cannot hold exactly: 2^53 + 1, a u64 near its top, the u64 maximum
BIG_INTS = (2**53 + 1, 2**64 - 2**11 - 1, 2**64 - 1)
# the same with `wide_ints=False`: every integer fits a signed 64-bit one
INT64_INTS = (2**53 + 1, 2**63 - 2**11 - 1, 2**63 - 1)
DRIFT_CLASSES = ((0.6, 5, 99), (0.3, 100, 500), (0.1, 501, 1500))  # good / acceptable / poor


def _weighted(rng: random.Random, pairs) -> Any:
    x = rng.random()
    acc = 0.0
    for value, weight in pairs:
        acc += weight
        if x < acc:
            return value
    return pairs[-1][0]


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def anchor_ms(seed: int) -> int:
    """The dataset's 'now': 2026-03-02 10:00 UTC plus a seed-derived number of minutes."""
    base = 1772445600000  # 2026-03-02T10:00:00Z
    offset = int.from_bytes(hashlib.sha256(f"anchor:{seed}".encode()).digest()[:4], "big")
    return base + (offset % (30 * 24 * 60)) * MINUTE


@dataclass
class Generated:
    now: int
    experiments: list[Experiment]
    rooms: list[Room]
    recordings: list[Recording]
    tables: dict[tuple[str, str], Table]
    delayed: list[tuple[int, str, str, int, bytes, dict]]  # arrival, type, exp, ts, json, cols
    defects: dict[str, list]
    room_exp: dict[str, str] = field(default_factory=dict)
    horizons: dict[str, int] = field(default_factory=dict)  # experiment -> its last row time
    cases: dict[str, list] = field(default_factory=dict)  # planted shapes, see Dataset.cases


class _Emitter:
    """Collects one experiment's rows; drops rows beyond the horizon; delays a few in live mode.

    Rooms are generated in creation order and no row of a room precedes its
    creation, so after each room every pending row older than the next room's
    creation is final: `flush` sorts those and appends them to the tables.
    """

    def __init__(self, exp_id: str, horizon: int, now: int, live: bool, rng: random.Random):
        self.exp_id = exp_id
        self.horizon = horizon
        self.now = now
        self.live = live
        self.rng = rng
        self.columns: dict[str, tuple[str, ...]] = {}
        self.builders: dict[str, TableBuilder] = {}
        self.pending: dict[str, list[tuple[int, bytes, tuple]]] = {}
        for name, extra in SERIES_COLUMNS.items():
            cols = ("roomId", "participantId", "deploymentId", *extra)
            self.columns[name] = cols
            self.builders[name] = TableBuilder(cols, [c for c in cols if c in NUMERIC_COLUMNS])
            self.pending[name] = []
        self.delayed: list[tuple[int, str, str, int, bytes, dict]] = []
        self._dumps = orjson.dumps

    def emit(self, kind: str, ts: int, record: dict, colvals: tuple) -> None:
        if ts > self.horizon:
            return
        data = self._dumps(record)
        if self.live and ts > self.now and self.rng.random() < 0.03:
            # a client batch flushed late: the row shows up after newer rows
            arrival = ts + self.rng.randint(2_000, 45_000)
            cols = dict(zip(self.columns[kind], colvals, strict=True))
            self.delayed.append((arrival, kind, self.exp_id, ts, data, cols))
            return
        # `+ b","` also copies the row out of orjson's oversized buffer
        self.pending[kind].append((ts, data + b",", colvals))

    def flush(self, before: int) -> None:
        for kind, rows in self.pending.items():
            if not rows:
                continue
            rows.sort(key=lambda r: r[0])
            cut = bisect_left(rows, before, key=lambda r: r[0])
            self.builders[kind].extend(rows[:cut])
            del rows[:cut]

    def tables(self) -> dict[str, Table]:
        self.flush(2**62)
        return {name: builder.build() for name, builder in self.builders.items()}


# Ids made to attack file paths, URLs and SQL (`hostile_ids=True`): a dot segment, a
# path escape, quotes, an SQL comment injection and a NUL byte. The random suffix keeps
# them unique; the generator draws the same random numbers either way.
HOSTILE_EXPERIMENT = "../../exp'\"; DROP TABLE events; --\x00"
HOSTILE_ROOMS = ("..", "../../room_", "room'; DROP TABLE rooms; --", 'room"\x00')
HOSTILE_PARTICIPANT = "../pt'\""


def _hostile(kind: str, index: int, plain: str) -> str:
    """The hostile id standing in for `plain` (None when this one stays plain)."""
    suffix = plain.split("_", 1)[1]
    if kind == "experiment" and index == 1:
        return HOSTILE_EXPERIMENT + suffix
    if kind == "room" and index < len(HOSTILE_ROOMS):
        return HOSTILE_ROOMS[index] if index == 0 else HOSTILE_ROOMS[index] + suffix
    if kind == "participant" and index == 0:
        return HOSTILE_PARTICIPANT + suffix
    return plain


def generate(
    seed: int,
    scale: float,
    live: bool,
    defects: bool = True,
    hostile_ids: bool = False,
    experiments: int | None = None,
    live_experiments: int | None = None,
    wide_ints: bool = True,
) -> Generated:
    """`experiments` (default: one per spec) cycles the specs; in live mode only the
    first `live_experiments` (default: all) keep producing rows after 'now'.
    `wide_ints=False` keeps every integer within the signed 64-bit range (the same
    rows, with the u64 values moved below 2^63)."""
    now = anchor_ms(seed)
    live_horizon = now + (3 * 3600_000 if live else 0)
    count = len(EXPERIMENT_SPECS) if experiments is None else experiments
    specs = [EXPERIMENT_SPECS[i % len(EXPERIMENT_SPECS)] for i in range(count)]
    experiments: list[Experiment] = []
    rooms: list[Room] = []
    recordings: list[Recording] = []
    tables: dict[tuple[str, str], Table] = {}
    delayed: list = []
    manifest: dict[str, list] = {
        "missingDataRooms": [],
        "missingSyncRooms": [],
        "disconnectedParticipants": [],
        "failedRecordings": [],
        "continuousRatingGaps": [],
    }
    cases: dict[str, list] = {"rejoinedParticipants": []}
    horizons: dict[str, int] = {}
    for index, spec in enumerate(specs):
        lively = live and (live_experiments is None or index < live_experiments)
        horizon = live_horizon if lively else now
        rng = random.Random(f"{seed}:experiment:{index}")
        exp_id = f"exp_{_hex(rng, 10)}"
        exp = Experiment(
            id=_hostile("experiment", index, exp_id) if hostile_ids else exp_id,
            name=spec["name"],
            description=spec["description"],
            owner_email="lab.pi@university.example" if index != 1 else "müller@uni.example",
            created_at=now - 30 * DAY - rng.randint(0, 5 * DAY),
            updated_at=now - 22 * DAY + rng.randint(0, DAY),
            features=spec["features"],
            index=index,
        )
        pilot = Deployment(f"dep_{_hex(rng, 10)}", exp.id, "pilot", now - 21 * DAY, now - 15 * DAY)
        main = Deployment(f"dep_{_hex(rng, 10)}", exp.id, "main", now - 14 * DAY, now + 60 * DAY)
        exp.deployments = [pilot, main]
        experiments.append(exp)
        horizons[exp.id] = horizon
        emitter = _Emitter(exp.id, horizon, now, live, random.Random(f"{seed}:late:{index}"))
        n_rooms = max(4, round(spec["rooms"] * scale))
        starts = []
        for i in range(n_rooms):
            dep = pilot if i < max(1, n_rooms * 15 // 100) else main
            lo, hi = dep.created_at + MINUTE, min(dep.closes_at, now - 15 * MINUTE)
            starts.append((rng.randint(lo, hi - 10 * MINUTE), dep, False))
        # sessions running at 'now', and in live mode the ones that will start later
        for _ in range(2):
            starts.append((now - rng.randint(60_000, 8 * MINUTE), main, False))
        if lively:
            future = max(6, round(12 * min(scale, 25) ** 0.5))
            for _ in range(future):
                starts.append((now + rng.randint(30_000, 150 * MINUTE), main, False))
        starts.sort(key=lambda s: s[0])
        historical = [i for i, s in enumerate(starts) if s[0] < now - 15 * MINUTE]
        planted = _plant(rng, spec, historical, defects)
        exp_rooms: list[Room] = []
        plain = [i for i in historical if not any(i in v for v in planted.values())]
        rejoin_room = plain[-1] if plain else None
        for room_index, (created, dep, _) in enumerate(starts):
            room_rng = random.Random(f"{seed}:{index}:{room_index}")
            rejoin = None
            if room_index == rejoin_room:
                rejoin = _rejoiner(exp_rooms[1:], created)
            room, recs = _room(
                room_rng,
                spec,
                exp,
                dep,
                created,
                room_index,
                planted,
                emitter,
                manifest,
                hostile_ids and index == 0,
                rejoin,
                wide_ints,
            )
            if rejoin is not None:
                first = next(r.id for r in exp_rooms if any(p.id == rejoin for p in r.participants))
                cases["rejoinedParticipants"].append(
                    {"experimentId": exp.id, "participantId": rejoin, "roomIds": [first, room.id]}
                )
            exp_rooms.append(room)
            rooms.append(room)
            recordings.extend(recs)
            if room_index + 1 < len(starts):
                emitter.flush(starts[room_index + 1][0])
        for name, table in emitter.tables().items():
            tables[(name, exp.id)] = table
        delayed.extend(emitter.delayed)
    delayed.sort(key=lambda d: d[0])
    gen = Generated(now, experiments, rooms, recordings, tables, delayed, manifest)
    gen.cases = cases
    gen.room_exp = {r.id: r.experiment_id for r in rooms}
    gen.horizons = horizons
    return gen


def _rejoiner(earlier: list[Room], before: int) -> str | None:
    """The id of a participant who left an earlier room and joins another with the same id
    (preferably one who left early, else the first who finished before `before`)."""
    done = [p for r in earlier for p in r.participants if p.ended_at < before - MINUTE]
    left = [p for p in done if p.final_status == "left"]
    pick = (left or done)[:1]
    return pick[0].id if pick else None


def _plant(rng: random.Random, spec: dict, historical: list[int], enabled: bool) -> dict:
    """Which historical rooms carry which planted defect."""
    out: dict[str, set] = {"missing": set(), "nosync": set(), "gap": set(), "failrec": set()}
    if not enabled or len(historical) < 4:
        return out
    pool = historical[len(historical) // 5 :]  # main deployment, not the earliest rooms
    per = max(1, len(historical) // 40)
    picks = rng.sample(pool, min(len(pool), 4 * per))
    out["missing"] = set(picks[:per])
    f = spec["features"]
    if f.synced_media:
        out["nosync"] = set(picks[per : 2 * per])
    if f.continuous:
        out["gap"] = set(picks[2 * per : 3 * per])
    if f.videochat:
        out["failrec"] = set(picks[3 * per : 4 * per])
    out["technical"] = {True}  # TECHNICAL codes happen only when defects are on
    return out


def _room(rng, spec, exp, dep, created, room_index, planted, emitter, manifest, hostile=False,
          rejoin=None, wide_ints=True):  # fmt: skip
    f: Feature = spec["features"]
    size = _weighted(rng, spec["sizes"])
    if room_index in planted["nosync"]:
        size = max(size, 2)  # the defect only means something with two or more people
    room_id = f"room_{_hex(rng, 10)}"
    if hostile:
        room_id = _hostile("room", room_index, room_id)
    room = Room(room_id, exp.id, dep.id, dep.name, created, None, created)
    missing = room_index in planted["missing"]
    technical_ok = bool(planted.get("technical"))
    # joining and the pre-experiment phase
    people = []
    for slot in range(size):
        joined = created + (0 if slot == 0 else rng.randint(2_000, 60_000))
        code = _weighted(rng, COMPLETION_CODES)
        if code == "NOCONSENT" and slot == 0:
            code = "SUCCESS"  # someone has to run the session
        if code == "TECHNICAL" and (not technical_ok or missing):
            code = "SUCCESS"
        if missing and code in ("NOCONSENT", "ABANDONED", "TIMEOUT"):
            code = "SUCCESS"
        email = None if rng.random() < 0.1 else f"p{_hex(rng, 6)}@participants.example"
        name = rng.choice(NAMES)
        pt_id = f"pt_{_hex(rng, 10)}"
        if rejoin is not None and slot == size - 1:
            pt_id = rejoin  # a participant who was in an earlier room joins this one
        p = Participant(
            _hostile("participant", slot, pt_id) if hostile and room_index == 0 else pt_id,
            room_id,
            exp.id,
            dep.id,
            email,
            name,
            spec["roles"][slot],
            joined,
            joined,
            code,
            STATUS_FOR_CODE[code],
        )
        people.append(p)
    room.participants = people
    pre = {}  # participant id -> list of (ts, eventType, response)
    ready = []
    for p in people:
        t = p.joined_at
        evs = [(t, "system", "system.participant_joined", None)]
        t += rng.randint(2_000, 6_000)
        evs.append((t, "pre_experiment", "consent.viewed", None))
        t += rng.randint(8_000, 30_000)
        if p.completion_code == "NOCONSENT":
            evs.append((t, "pre_experiment", "consent.declined", {"accepted": False}))
            p.ended_at = t + 1_000
            pre[p.id] = evs
            continue
        evs.append((t, "pre_experiment", "consent.accepted", {"accepted": True, "version": 3}))
        t += rng.randint(3_000, 8_000)
        evs.append((t, "pre_experiment", "instructions.viewed", None))
        for attempt in range(1, rng.choice((1, 1, 1, 2)) + 1):
            t += rng.randint(15_000, 40_000)
            evs.append(
                (
                    t,
                    "pre_experiment",
                    "instructions.comprehension_check",
                    {"attempt": attempt, "correct": True, "answer": "B"},
                )
            )
        t += rng.randint(2_000, 5_000)
        evs.append((t, "pre_experiment", "instructions.completed", None))
        pre[p.id] = evs
        ready.append(t)
    start = max(ready) + rng.randint(2_000, 5_000)
    room.started_at = start
    active = [p for p in people if p.completion_code != "NOCONSENT"]
    # where each participant stops: leavers and disconnects stop partway
    states = STATES[spec["key"]]
    durations = [rng.randint(lo * 1000, hi * 1000) for *_, lo, hi in states]
    bounds = []
    t = start
    for d in durations:
        bounds.append((t, t + d))
        t += d + rng.randint(500, 2_000)
    end = bounds[-1][1]
    stop_at = {}
    for p in active:
        code = p.completion_code
        if code in ("ABANDONED", "TECHNICAL"):
            s0, s1 = bounds[min(2, len(bounds) - 1)]
            stop_at[p.id] = rng.randint(s0 + 1_000, s1 - 1_000)
        elif code == "TIMEOUT":
            s0, s1 = bounds[-1]
            stop_at[p.id] = rng.randint(s0 + 1_000, s1 - 1_000)
        else:
            stop_at[p.id] = end
        p.ended_at = stop_at[p.id] + rng.randint(1_000, 3_000)
    room.completed_at = max([end + 2_000] + [p.ended_at for p in people])
    if missing:
        manifest["missingDataRooms"].append(
            {
                "experimentId": exp.id,
                "roomId": room_id,
                "participantIds": [p.id for p in people],
            }
        )
        return room, []
    for p in active:
        if p.completion_code == "TECHNICAL":
            manifest["disconnectedParticipants"].append(
                {
                    "experimentId": exp.id,
                    "roomId": room_id,
                    "participantId": p.id,
                    "disconnectedAt": iso(stop_at[p.id]),
                }
            )
    sess = _Session(rng, emitter, exp, dep, room, start, states, bounds, stop_at, pre)
    sess.grouped_answers = room_index % 2 == 1  # one `answers` list per questionnaire
    if not wide_ints:
        sess.big_ints, sess.counter_top = INT64_INTS, 2**63
    sess.run(f, nosync=room_index in planted["nosync"], gap=room_index in planted["gap"])
    manifest["continuousRatingGaps"].extend(sess.gaps)
    if room_index in planted["nosync"] and len(active) > 1:
        manifest["missingSyncRooms"].append({"experimentId": exp.id, "roomId": room_id})
    recs = []
    if f.videochat:
        failing = room_index in planted["failrec"]
        for p in active:
            for kind in ("video", "audio"):
                fail = failing and kind == "video" and p is active[0]
                rec = _recording(rng, exp, dep, room, p, kind, start, stop_at[p.id], fail)
                recs.append(rec)
                if fail:
                    manifest["failedRecordings"].append(
                        {
                            "experimentId": exp.id,
                            "roomId": room_id,
                            "participantId": p.id,
                            "recordingId": rec.id,
                        }
                    )
    return room, recs


def _recording(rng, exp, dep, room, p, kind, start, stop, failed) -> Recording:
    rec_start = start + rng.randint(300, 2_000)
    legacy = dep.name == "pilot"
    if legacy:  # the old storage path kept whole-second times
        rec_start += 1000 - rec_start % 1000
        stop -= stop % 1000
    fmt = "webm" if kind == "audio" else rng.choice(("mp4", "mp4", "webm"))
    size = rng.randint(20_000, 90_000) if kind == "video" else rng.randint(6_000, 20_000)
    return Recording(
        id=f"rec_{_hex(rng, 10)}",
        egress_id=f"EG_{_hex(rng, 12)}",
        room_id=room.id,
        experiment_id=exp.id,
        deployment_id=dep.id,
        participant_id=p.id,
        participant_name=p.name,
        room_name=f"{exp.name} / {room.id[-6:]}",
        kind=kind,
        fmt=fmt,
        start=rec_start,
        end=stop,
        ready_at=stop + rng.randint(20_000, 240_000),
        failed=failed,
        legacy=legacy,
        size=size,
        video_offset=rec_start - start,
        resolution=rng.choice(("1280x720", "640x480")) if kind == "video" else None,
    )


class _Session:
    """Emits every data row of one room that has data."""

    def __init__(self, rng, emitter, exp, dep, room, start, states, bounds, stop_at, pre):
        self.rng = rng
        self.emit = emitter.emit
        self.exp = exp
        self.dep = dep
        self.room = room
        self.start = start
        self.states = states
        self.bounds = bounds
        self.stop_at = stop_at
        self.pre = pre
        self.gaps: list[dict] = []
        self.grouped_answers = False
        self.big_ints = BIG_INTS  # `wide_ints=False`: INT64_INTS
        self.counter_top = 2**64  # u64 counters count up to just below this
        self.answers: dict[str, list] = {}  # participant id -> answers awaiting their event
        self.active = [p for p in room.participants if p.id in stop_at]

    def event(self, p, ts, category, event_type, *, ctype=None, content=None, state=None,
              response=None) -> None:  # fmt: skip
        onset = ts - self.start
        self.emit(
            "events",
            ts,
            {
                "id": f"evt_{self.rng.getrandbits(48):012x}",
                "experimentId": self.exp.id,
                "roomId": self.room.id,
                "participantId": p.id,
                "onset": onset,
                "timestamp": iso(ts),
                "category": category,
                "eventType": event_type,
                "componentType": ctype,
                "content": event_type.rsplit(".", 1)[-1] if content is None else content,
                "stateId": state[0] if state else None,
                "stateName": state[1] if state else None,
                "participantRole": p.role,
                "response": response,
            },
            (self.room.id, p.id, self.dep.id, category, onset),
        )

    def component(self, p, ts, comp_id, ctype, state, completed, config, variables) -> None:
        self.emit(
            "components",
            ts,
            {
                "experimentId": self.exp.id,
                "roomId": self.room.id,
                "participantId": p.id,
                "componentId": comp_id,
                "componentType": ctype,
                "stateId": state[0],
                "completed": completed,
                "timestamp": iso(ts),
                "config": config,
                "variables": variables,
            },
            (self.room.id, p.id, self.dep.id, ctype, completed, state[0]),
        )

    def run(self, f: Feature, nosync: bool, gap: bool) -> None:
        rng = self.rng
        for p in self.room.participants:
            for ts, cat, etype, resp in self.pre[p.id]:
                self.event(p, ts, cat, etype, response=resp)
        gap_done = not gap
        for (s0, s1), state in zip(self.bounds, self.states, strict=True):
            kind = state[2]
            for p in self.active:
                stop = self.stop_at[p.id]
                if s0 > stop:
                    continue
                jit = rng.randint(5, 250)
                self.event(p, s0 + jit, "state", "state.transition", state=state,
                           content=state[1])  # fmt: skip
                variables = {
                    "round": self.states.index(state) + 1,
                    "condition": "A",
                    "note": None,
                    "sessionSeed": self.big_ints[self.states.index(state) % len(self.big_ints)],
                }
                comps = _COMPONENTS[kind]
                for ci, ctype in enumerate(comps):
                    comp_id = f"{state[0]}_{ctype}_{ci}"
                    shown = s0 + jit + 50 + ci * 10
                    done = s1 <= stop
                    self.component(p, shown, comp_id, ctype, state, done,
                                   {"label": state[1], "required": ctype != "text_display"},
                                   variables)  # fmt: skip
                    self.event(p, shown, "component", "component.display", ctype=ctype,
                               state=state)  # fmt: skip
                    if kind == "questionnaire" and done:
                        self._questionnaire(p, s0, s1, state, ctype, ci)
                    elif done:
                        self.event(p, s1 - rng.randint(10, 400), "component",
                                   "component.complete", ctype=ctype, state=state,
                                   response={"durationMs": s1 - shown})  # fmt: skip
                if kind.startswith("media"):
                    self.event(p, s0 + jit + 100, "media", "media.play", state=state,
                               content=f"{state[0]}.mp4")  # fmt: skip
                    if s1 <= stop:
                        self.event(p, s1, "media", "media.ended", state=state)
                    if kind == "media_continuous" and f.continuous:
                        gap_here = not gap_done and p is self.active[0]
                        gap_done = gap_done or gap_here
                        self._continuous(p, s0 + jit + 100, min(s1, stop), state, gap_here)
                    if kind == "media_sparse" and f.sparse:
                        self._sparse(p, s0 + jit + 100, min(s1, stop), state)
                    if f.eyetracking:
                        self._gaze(p, s0 + jit + 100, min(s1, stop), state)
                    if f.synced_media and not nosync and len(self.active) > 1 and p.role != "host":
                        self._sync(p, s0 + jit + 200, min(s1, stop))
                if kind in ("chat", "conversation") and f.chat:
                    self._chat(p, s0, min(s1, stop), state)
            if f.videochat:
                pass
        if f.videochat:
            for p in self.active:
                self._videochat(p, self.start - rng.randint(1_000, 4_000), self.stop_at[p.id])
        for p in self.active:
            stop = self.stop_at[p.id]
            if p.final_status == "completed":
                self.event(p, stop + 500, "system", "system.participant_completed",
                           response={"completionCode": p.completion_code})  # fmt: skip
            elif p.final_status == "disconnected":
                self.event(p, stop, "system", "system.connection_lost",
                           response={"reason": "ping timeout"})  # fmt: skip

    def _questionnaire(self, p, s0, s1, state, ctype, ci) -> None:
        rng = self.rng
        t = s0 + (ci + 1) * (s1 - s0) // 6
        if ctype == "likert":
            qid, text = QUESTIONS[ci % len(QUESTIONS)]
            answer = rng.randint(1, 7)
            if rng.random() < 0.1:
                answer = str(answer)  # a number sent as text
            resp = {"questionId": qid, "question": text, "answer": answer, "scale": 7}
        else:
            resp = {"questionId": "q_free", "question": "Anything else?",
                    "answer": rng.choice(FREE_TEXT)}  # fmt: skip
        if not self.grouped_answers:
            self.event(p, t, "questionnaire", "questionnaire.response", ctype=ctype, state=state,
                       response=resp)  # fmt: skip
            return
        answers = self.answers.setdefault(p.id, [])
        answers.append(resp)
        if ctype != "likert":  # the last component submits the whole form
            self.event(p, t, "questionnaire", "questionnaire.response", ctype=ctype,
                       state=state, response={"answers": answers})  # fmt: skip
            del self.answers[p.id]

    def _continuous(self, p, t0, t1, state, with_gap) -> None:
        rng = self.rng
        comp = f"{state[0]}_continuous_rating_1"
        value = rng.uniform(30, 70)
        t = t0
        gap_at = rng.randint(t0 + 3_000, max(t0 + 3_001, t1 - 8_000)) if with_gap else None
        last = None
        base = (self.room.id, p.id, self.dep.id, comp)
        exp_id, room_id = self.exp.id, self.room.id
        emit = self.emit
        while t <= t1:
            if gap_at is not None and t >= gap_at and last is not None:
                nxt = t + rng.randint(4_000, 8_000)
                if nxt > t1:
                    break
                self.gaps.append(
                    {
                        "experimentId": exp_id,
                        "roomId": room_id,
                        "participantId": p.id,
                        "componentId": comp,
                        "from": iso(last),
                        "to": iso(nxt),
                        "gapMs": nxt - last,
                    }
                )
                t = nxt
                gap_at = None
            value = min(100.0, max(0.0, value + rng.gauss(0, 3)))
            onset = t - self.start
            emit(
                "ratings/continuous",
                t,
                {
                    "experimentId": exp_id,
                    "roomId": room_id,
                    "participantId": p.id,
                    "componentId": comp,
                    "timestamp": iso(t),
                    "onset": onset,
                    "value": round(value, 2),
                },
                (*base, onset),
            )
            last = t
            t += rng.randint(100, 500)

    def _sparse(self, p, t0, t1, state) -> None:
        rng = self.rng
        n = rng.randint(2, 5)
        times = sorted(rng.sample(range(t0 + 1_000, max(t0 + 1_001 + n, t1 - 500)), n))
        video = f"{state[0]}.mp4"
        previous = None
        for k, t in enumerate(times):
            pause = rng.randint(1_500, 6_000)
            raw = rng.randint(0, 80)  # slider position
            onset = t - self.start
            offset = rng.randint(-40, 40)
            self.emit(
                "ratings/sparse",
                t,
                {
                    "ratingId": f"rat_{rng.getrandbits(48):012x}",
                    "participantId": p.id,
                    "timestamp": iso(t),
                    "onset": onset,
                    "rawOnset": onset + offset,
                    "clockOffsetApplied": -offset,
                    "value": round(raw * 100 / 80, 2) + 0.0,
                    "rawValue": raw,
                    "scale": {"min": 0, "max": 80},
                    "type": "sparse",
                    "stateId": state[0],
                    "stimulusId": video,
                    "stimulusTime": t - t0,
                    "responseTime": rng.randint(400, 3_000),
                    "confidence": None if rng.random() < 0.3 else round(rng.random(), 3),
                    "metadata": {
                        "question": "How intense is this moment?",
                        "dimension": "intensity",
                        "componentType": "vasrating",
                        "sampleIndex": k,
                    },
                    "ratingEndOnset": onset + pause,
                    "sparseRatingData": {
                        "videoId": video,
                        "pauseIndex": k,
                        "videoRelativeTime": t - t0,
                        "pauseTimestamp": t,
                        "componentType": "vasrating",
                        "componentData": {"value": raw},
                        "previousRatings": previous,
                        "mediaPauseOnset": onset,
                        "mediaResumeOnset": onset + pause,
                        "actualPauseDuration": pause,
                    },
                    "stateStartTime": iso(t0),
                    "stateDuration": t1 - t0,
                },
                (self.room.id, p.id, self.dep.id, onset),
            )
            previous = {**(previous or {}), video: raw}
            self.event(p, t, "media", "media.pause", state=state, response={"ratingIndex": k})
            self.event(p, t + pause, "media", "media.resume", state=state)

    def _gaze(self, p, t0, t1, state) -> None:
        rng = self.rng
        t = t0
        x, y = 0.5, 0.5
        base = (self.room.id, p.id, self.dep.id)
        while t <= t1:
            x = min(1.0, max(0.0, x + rng.gauss(0, 0.05)))
            y = min(1.0, max(0.0, y + rng.gauss(0, 0.05)))
            blink = rng.random() < 0.05
            onset = t - self.start + rng.choice((0.25, 0.5, 0.75, 0.125))
            self.emit(
                "eyetracking",
                t,
                {
                    "experimentId": self.exp.id,
                    "roomId": self.room.id,
                    "participantId": p.id,
                    "timestamp": iso(t),
                    "onset": onset,
                    "x": None if blink else round(x, 4),
                    "y": None if blink else round(y, 4),
                    "confidence": 0.0 if blink else round(rng.uniform(0.6, 1.0), 3),
                    "pupilDiameter": None if blink else round(rng.uniform(2.5, 5.5), 2),
                    "stimulusId": f"{state[0]}.mp4",
                },
                (*base, onset),
            )
            t += rng.randint(700, 1_100)

    def _sync(self, p, t0, t1) -> None:
        rng = self.rng
        t = t0
        base = (self.room.id, p.id, self.dep.id)
        while t <= t1:
            drift = rng.randint(*_weighted(rng, [((lo, hi), w) for w, lo, hi in DRIFT_CLASSES]))
            drift = drift if rng.random() < 0.5 else -drift
            quality = max(0.0, round(1 - abs(drift) / 2000, 3))
            self.emit(
                "sync",
                t,
                {
                    "experimentId": self.exp.id,
                    "roomId": self.room.id,
                    "participantId": p.id,
                    "timestamp": iso(t),
                    "timeDrift": drift,
                    "playbackRate": 1.0 if abs(drift) < 100 else (1.05 if drift < 0 else 0.95),
                    "syncQuality": quality,
                    "latency": rng.randint(20, 180),
                },
                base,
            )
            if abs(drift) > 500:
                self.event(p, t, "sync", "sync.drift_correction", response={"driftMs": drift})
            t += rng.randint(1_000, 2_000)

    def _chat(self, p, t0, t1, state) -> None:
        rng = self.rng
        others = [q.id for q in self.active if q.id != p.id]
        t = t0 + rng.randint(1_000, 6_000)
        while t <= t1:
            text = rng.choice(CHAT_LINES)
            msg = f"msg_{rng.getrandbits(48):012x}"
            self.emit(
                "chat",
                t,
                {
                    "messageId": msg,
                    "experimentId": self.exp.id,
                    "roomId": self.room.id,
                    "senderId": p.id,
                    "senderRole": p.role,
                    "content": text,
                    "timestamp": iso(t),
                    "recipientIds": others,
                    "stateId": state[0],
                },
                (self.room.id, p.id, self.dep.id),
            )
            self.event(p, t, "communication", "chat.message_sent", state=state,
                       response={"messageId": msg, "length": len(text)})  # fmt: skip
            t += rng.randint(4_000, 15_000)

    def _videochat(self, p, t0, t1) -> None:
        """LiveKit webhook events: whole-second times, some numbers sent as text."""
        rng = self.rng
        base = (self.room.id, p.id, self.dep.id)
        ident = {"experimentId": self.exp.id, "roomId": self.room.id, "participantId": p.id}

        def emit(t: int, fields: dict) -> None:
            t -= t % 1000
            self.emit("videochat", t, {**ident, "timestamp": iso_seconds(t), **fields}, base)

        emit(t0, {"type": "participant_connected", "livekitRoom": f"lk_{self.room.id}",
                  "identity": p.id})  # fmt: skip
        for k, track in enumerate(("camera", "microphone")):
            emit(t0 + 300 + 200 * k, {"type": "track_published", "trackSource": track,
                                      "trackSid": f"TR_{_hex(rng, 10)}", "muted": False})  # fmt: skip
        t = t0 + rng.randint(8_000, 15_000)
        sent = 0
        while t < t1:
            bitrate: int | str = rng.randint(300, 2_500)
            if rng.random() < 0.15:
                bitrate = str(bitrate)  # a number sent as text
            sent += rng.randint(10**6, 10**7)
            emit(
                t,
                {
                    "type": "connection_quality",
                    "quality": rng.choice(("excellent", "excellent", "good", "poor")),
                    "bitrateKbps": bitrate,
                    "packetLossPct": round(rng.random() * 2, 2),
                    "jitterMs": rng.randint(1, 40),
                    "rttMs": rng.randint(15, 200),
                    # a u64 counter above the int64 range (below it with wide_ints=False)
                    "bytesSent": self.counter_top - 10**11 + sent,
                },
            )
            t += rng.randint(10_000, 20_000)
        reason = "CONNECTION_LOST" if p.final_status == "disconnected" else "CLIENT_INITIATED"
        emit(t1 + 1, {"type": "participant_disconnected", "reason": reason})


_COMPONENTS = {
    "info": ("text_display",),
    "media_continuous": ("video_player", "continuous_rating"),
    "media_sparse": ("video_player", "sparse_rating"),
    "chat": ("text_chat",),
    "conversation": ("video_chat",),
    "questionnaire": ("likert", "likert", "likert", "text_input"),
}
