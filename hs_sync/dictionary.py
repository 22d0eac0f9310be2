"""The data dictionary: what each table, view and column of the warehouse holds.

Columns are described once by name (`COLUMNS`: a name such as `timestamp` or
`roomId` means the same in every table) and overridden per table where a name
means something else there (`OVERRIDES`, e.g. `id`, `value`, `type`). The
registry reads this through `DataType.describe`; the published database carries
it as `COMMENT ON` (`write_comments`), Dagster as column descriptions,
`hs-sync schema` prints it and `docs/data-dictionary.md` is generated from it.
A registry entry may describe its table and columns itself (`DataType.doc`,
`Column.doc`), which wins over the text here; names described here need none.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class Doc:
    """A column's description and, where the values have one, their unit."""

    description: str
    unit: str | None = None

    @property
    def text(self) -> str:
        """The description with its unit, as a database comment shows it."""
        return f"{self.description} (unit: {self.unit})" if self.unit else self.description


D = Doc
UTC = "UTC timestamp"
MS = "ms"

# Columns by name: the same name means the same thing wherever it appears.
COLUMNS: dict[str, Doc] = {
    # who and where
    "experimentId": D("HyperStudy experiment id"),
    "roomId": D("Room (session) id: one run of the experiment with its participants"),
    "participantId": D("Participant id (unique within a room; a rejoining participant keeps it)"),
    "deploymentId": D("Deployment id (a published version of the experiment, e.g. pilot, main)"),
    "deploymentName": D("Deployment name as shown on the HyperStudy dashboard"),
    "componentId": D("Id of the experiment component (screen element) the row belongs to"),
    "componentType": D("Kind of component, e.g. video, questionnaire, rating (NULL if none)"),
    "stateId": D("Id of the experiment state (screen) the participant was in"),
    "stateName": D("Name of the experiment state (screen) the participant was in"),
    "stimulusId": D("Id of the stimulus (media file) shown"),
    "participantRole": D("The participant's role in the room (e.g. host, guest)"),
    "role": D("The participant's role in the room (e.g. host, guest)"),
    # time
    "timestamp": D("When the row was recorded, by the server clock", UTC),
    "onset": D("Time since the experiment started in the room; negative before the start", MS),
    "createdAt": D("When it was created", UTC),
    "startedAt": D("When the room started", UTC),
    "completedAt": D("When it completed (NULL while still running)", UTC),
    "updatedAt": D("When it was last changed", UTC),
    "joinedAt": D("When the participant joined the room", UTC),
    "startTime": D("When the recording started", UTC),
    "endTime": D("When the recording ended", UTC),
    # counts and status
    "status": D("Status as the API reports it; changes over time (e.g. active, completed)"),
    "participantCount": D("Number of participants, as the API counts them"),
    "roomCount": D("Number of rooms (sessions), as the API counts them"),
    "completionCode": D(
        "How the participant finished: SUCCESS, TIMEOUT, TECHNICAL, NOCONSENT, ABANDONED, "
        "IN_PROGRESS or COMPLETED_NO_CODE"
    ),
    "email": D("The participant's e-mail address, where the study collects one"),
    "name": D("Name as entered in HyperStudy"),
    # content
    "content": D("The event's content as sent by the client (JSON)"),
    "response": D("The participant's response carried by the event (JSON, any shape)"),
    "metadata": D("The record's metadata object, whole (JSON)"),
    "confidence": D("Confidence of the value, 0 to 1 (NULL when not given)", "0-1"),
    # ratings
    "ratingId": D("Id of the sparse rating"),
    "rawOnset": D("Onset as the participant's own clock measured it, before correction", MS),
    "clockOffsetApplied": D(
        "Correction applied to rawOnset for the participant's clock offset "
        "(onset = rawOnset + clockOffsetApplied)",
        MS,
    ),
    "rawValue": D("The rating value exactly as the API sent it, as text"),
    "scale": D("The rating scale, whole (JSON: min, max and labels)"),
    "scaleMin": D("Lowest value of the rating scale (scale.min)"),
    "scaleMax": D("Highest value of the rating scale (scale.max)"),
    "stimulusTime": D("Position in the stimulus media when the rating was given", MS),
    "responseTime": D("Time the participant took to respond after the prompt", MS),
    "question": D("The question asked (metadata.question)"),
    "dimension": D("The rated dimension, e.g. valence or arousal (metadata.dimension)"),
    "ratingEndOnset": D("Onset at which the rating ended", MS),
    "sparseRatingData": D("Details of media pauses for the rating (JSON, nested)"),
    "stateStartTime": D("When the state the rating belongs to started", UTC),
    "stateDuration": D("How long the state the rating belongs to lasted", MS),
    # events
    "category": D(
        "Event category: component, state, media, pre_experiment, communication, sync, "
        "questionnaire or system"
    ),
    "eventType": D("Event type, e.g. component.complete, state.transition, consent.accepted"),
    # chat
    "messageId": D("Id of the chat message"),
    "senderId": D("Participant id of the sender"),
    "recipientIds": D("Participant ids of the recipients (empty or NULL: everyone in the room)"),
    "senderRole": D("The sender's role in the room"),
    # videochat (LiveKit)
    "livekitRoom": D("LiveKit room the video chat ran in"),
    "identity": D("LiveKit participant identity"),
    "trackSource": D("Source of the published track (camera, microphone, screen share)"),
    "trackSid": D("LiveKit track id"),
    "muted": D("Whether the track was muted"),
    "quality": D("LiveKit connection quality (excellent, good, poor)"),
    "bitrateKbps": D("Bit rate of the connection", "kbit/s"),
    "packetLossPct": D("Share of packets lost", "%"),
    "jitterMs": D("Network jitter", MS),
    "rttMs": D("Network round-trip time", MS),
    "bytesSent": D("Bytes sent on the connection so far: a u64 counter, exact digits as text"),
    "reason": D("Why it happened (e.g. why a participant disconnected)"),
    # media sync
    "timeDrift": D("Playback position's drift from the host's (signed)", MS),
    "playbackRate": D("Media playback rate (1.0 = normal speed)"),
    "syncQuality": D("Sync quality score, 1 is perfect", "0-1"),
    "latency": D("Network latency to the host", MS),
    # components
    "completed": D("Whether the participant completed the component"),
    "config": D("The component's configuration as shown (JSON)"),
    "variables": D("Snapshot of the experiment variables when the component was shown (JSON)"),
    # eye tracking
    "x": D("Horizontal gaze position as a fraction of the screen width (NULL: blink)", "0-1"),
    "y": D("Vertical gaze position as a fraction of the screen height (NULL: blink)", "0-1"),
    "pupilDiameter": D("Pupil diameter (NULL: blink)", "mm"),
    # recordings
    "recordingId": D("Id of the recording"),
    "egressId": D("LiveKit egress id that produced the recording"),
    "participantName": D("Display name of the recorded participant"),
    "duration": D("Length of the recording", MS),
    "videoOffset": D("Onset at which the recording starts (align media with onsets)", MS),
    "fileSize": D("Size of the media file as the API reports it", "bytes"),
    "format": D("Container format (mp4, webm)"),
    "resolution": D("Video resolution, width x height (NULL for audio)", "px"),
    "mediaType": D("video or audio (metadata.type)"),
    "recordingType": D("Kind of recording (metadata.recordingType)"),
    "downloadPath": D("API path the media file is fetched from (needs the API key)"),
    "downloadUrl": D("Legacy records' media URL, stored without its signature"),
    "url": D("Legacy records' plain media URL, stored without any query"),
    "ownerId": D("Id of the HyperStudy user who owns it"),
    "ownerName": D("Name of the HyperStudy user who owns it"),
    # experiments
    "description": D("The experiment's description"),
    "ownerEmail": D("E-mail address of the experiment's owner"),
    # lineage (every normalized table)
    "_key": D("Primary key hs-sync gives the row (the record id, or a hash of the record)"),
    "_extra": D("Fields the API sent that no column holds, as JSON (NULL: none)"),
    "_synced_at": D("When hs-sync stored this version of the row", UTC),
    "_raw_file": D("The raw file under raw/ the row was read from (lineage)"),
    # views and hs-sync's own tables (snake_case names)
    "experiment_id": D("HyperStudy experiment id"),
    "experiment_name": D("Name of the experiment"),
    "deployment_id": D("Deployment id"),
    "deployment_name": D("Deployment name as shown on the HyperStudy dashboard"),
    "room_id": D("Room (session) id"),
    "participant_id": D("Participant id"),
    "participant_count": D("Number of participants, as the API counts them"),
    "component_id": D("Id of the experiment component"),
    "component_type": D("Kind of component"),
    "state_id": D("Id of the experiment state (screen)"),
    "state_name": D("Name of the experiment state (screen)"),
    "room_status": D("Status of the room (session)"),
    "completion_code": D("How the participant finished (SUCCESS, TIMEOUT, ...)"),
    "created_at": D("When it was created", UTC),
    "started_at": D("When the room started", UTC),
    "completed_at": D("When it completed (NULL while still running)", UTC),
    "joined_at": D("When the participant joined the room", UTC),
    "duration_s": D("Session length, started to completed (NULL while running)", "s"),
    "check_name": D("Name of the integrity check (see `hs-sync check`)"),
    "severity": D("error (a fault of the data or the sync) or warning (a finding to review)"),
    "checked_at": D("When the check ran", UTC),
    "entity": D("What the issue is about (room, participant, recording, ...)"),
    "detail": D("What is wrong, in words"),
    "hint": D("What to do about it"),
    "quality_class": D(
        "Sync quality class by absolute drift: good (< 100 ms), acceptable (100-500 ms), "
        "poor (> 500 ms)"
    ),
}

# Per table: names whose meaning differs there, and the columns of views and of
# hs-sync's own tables that no shared name covers.
# An agent run's manifest: the agent_runs rows, and the run rows of agent_decisions.
AGENT_RUN: dict[str, Doc] = {
    "personaId": D("Persona the agent played"),
    "seed": D("Random seed of the agent run"),
    "totalInputTokens": D("Input tokens over the whole run"),
    "totalOutputTokens": D("Output tokens over the whole run"),
    "totalCostUsd": D("Cost of the run", "USD"),
    "turns": D("Turns the agent took in the run"),
    "codeCommitSha": D("Commit of the agent code that ran"),
    "endedAt": D("When the agent run ended", UTC),
    "model": D("Language model the agent used"),
    "provider": D("Provider of that model"),
}

OVERRIDES: dict[str, dict[str, Doc]] = {
    "variables": {
        "variable": D("Name of the experiment variable"),
        "value": D("Value the variable took (JSON)"),
        "source": D("What set it: seed or component"),
        "persisted": D("Whether the value was saved with the room"),
    },
    "deployment_sessions": {
        "id": D("Room (session) id"),
    },
    "agent_decisions": {
        "recordType": D("decision (one turn) or run (the run's manifest)"),
        "id": D("Id of the decision or run"),
        "seq": D("Turn number within the run"),
        "turnKind": D("Kind of turn (e.g. speak, rate, wait)"),
        "action": D("What the agent did"),
        "value": D("The value the agent gave (JSON)"),
        "latencyMs": D("Time the model took to answer", MS),
        "inputTokens": D("Input tokens of this turn"),
        "outputTokens": D("Output tokens of this turn"),
        **AGENT_RUN,
    },
    "agent_runs": {
        "id": D("Id of the agent run"),
        "roomStatus": D("Status of the room when the run ended"),
        "orphaned": D("Whether the run lost its room before it ended"),
        **AGENT_RUN,
    },
    "events": {"id": D("Event id")},
    "ratings_continuous": {
        "value": D("The rating at this moment, on the component's scale"),
        "componentId": D("Id of the continuous-rating component"),
    },
    "ratings_sparse": {
        "value": D("The rating given, as a number on the rating scale"),
        "onset": D("When the rating was given, corrected for the participant's clock", MS),
        "type": D("How the rating was given (e.g. button_press)"),
        "metadata": D("The rating's metadata, whole (JSON: question, dimension, ...)"),
    },
    "chat": {"content": D("The message text"), "stateId": D("State the message was sent in")},
    "videochat": {
        "type": D(
            "LiveKit event: participant_connected, track_published, connection_quality, "
            "participant_disconnected, ..."
        ),
    },
    "sync": {"timestamp": D("When the sample was taken, by the server clock", UTC)},
    "components": {"timestamp": D("When the component was shown", UTC)},
    "eyetracking": {"confidence": D("Tracker's confidence in the sample (0: lost)", "0-1")},
    "recordings": {
        "status": D("Recording status (e.g. processing, complete, failed)"),
        "metadata": D("The recording's metadata, whole (JSON: type, recordingType, roomName)"),
    },
    "participants": {
        "id": D("Participant id"),
        "status": D("The participant's status (e.g. active, completed, timed_out)"),
    },
    "rooms": {
        "id": D("Room (session) id"),
        "status": D("The room's status (e.g. active, completed)"),
        "createdAt": D("When the room was created", UTC),
        "participantCount": D("Participants in the room, as the API counts them"),
    },
    "deployments": {
        "id": D("Deployment id"),
        "name": D("Deployment name"),
        "status": D("The deployment's status (e.g. active, closed)"),
        "roomCount": D("Rooms of the deployment, as the API counts them"),
    },
    "experiments": {"id": D("Experiment id"), "name": D("Experiment name")},
    # hs-sync's own tables
    "media_files": {
        "recording_id": D("Id of the recording (recordings.recordingId)"),
        "path": D("Where the media file is, relative to the warehouse folder"),
        "bytes": D("Size of the downloaded, verified file", "bytes"),
        "expected_bytes": D("Size the recording's metadata announced (fileSize)", "bytes"),
        "sha256": D("SHA-256 of the downloaded file (hex)"),
        "status": D("downloaded, pending, failed or skipped"),
        "reason": D("Why the file is failed or skipped"),
        "attempts": D("Download attempts over all runs"),
        "last_attempt": D("When the last download attempt was made", UTC),
        "downloaded_at": D("When the file was downloaded", UTC),
    },
    "check_results": {
        "status": D("passed, found (issues found) or error (the check could not run)"),
        "passed": D("Whether the check found nothing"),
        "issue_count": D("Number of issues found"),
        "sample": D("A few of the ids concerned"),
        "details": D("Further figures of the check (JSON)"),
    },
    "check_issues": {"id": D("Id of the entity the issue is about")},
    # views
    "open_issues": {"id": D("Id of the entity the issue is about")},
    "events_enriched": {
        "id": D("Event id"),
        "role": D("The participant's role (from participants, else from the event)"),
    },
    "dashboard_deployments": {
        "status": D("The deployment's status (e.g. active, closed)"),
        "rooms_synced": D("Rooms of the deployment held in the warehouse"),
        "participants_synced": D("Participants of the deployment held in the warehouse"),
    },
    "dashboard_rooms": {"status": D("The room's status (e.g. active, completed)")},
    "participant_rows": {
        "data_type": D("The data type (its table's name)"),
        "row_count": D("Rows of the data type held for the participant in the room"),
    },
    "dashboard_participants": {
        "status": D("The participant's status (e.g. active, completed, timed_out)"),
        "events": D("Events held for the participant"),
        "ratings_continuous": D("Continuous rating samples held for the participant"),
        "ratings_sparse": D("Sparse ratings held for the participant"),
        "chat_messages": D("Chat messages the participant sent"),
        "videochat": D("Video-chat events held for the participant"),
        "sync": D("Media sync samples held for the participant"),
        "components": D("Component records held for the participant"),
        "eyetracking": D("Gaze samples held for the participant"),
        "recordings": D("Recordings held for the participant"),
        "data_types": D("The data types the warehouse holds rows of for the participant"),
    },
    "questionnaire_responses": {
        "question_id": D("Id of the question (response.questionId)"),
        "question": D("The question text (response.question)"),
        "answer": D("The answer as given, as text (response.answer)"),
        "answer_value": D("The answer as a number, where it is one"),
        "scale_points": D("Number of points of the answer scale (response.scale)"),
    },
    "comprehension_attempts": {
        "attempt": D("Attempt number, 1 for the first"),
        "question": D("The comprehension question (or the state name)"),
        "answer": D("The answer given"),
        "correct": D("Whether the answer was correct"),
    },
    "comprehension_checks": {
        "attempts": D("Attempts made"),
        "correct_attempts": D("Attempts answered correctly"),
        "score": D("Share of attempts answered correctly", "0-1"),
        "passed": D("Whether the last attempt was correct"),
        "result": D("pass or fail"),
    },
    "sync_samples": {
        "abs_drift_ms": D("Absolute drift from the host", MS),
    },
    "sync_quality": {
        "samples": D("Sync samples of the participant in the room"),
        "median_abs_drift_ms": D("Median absolute drift from the host", MS),
        "p95_abs_drift_ms": D("95th percentile of the absolute drift", MS),
        "max_abs_drift_ms": D("Largest absolute drift", MS),
        "mean_latency_ms": D("Mean latency to the host", MS),
        "share_good": D("Share of samples classed good", "0-1"),
        "share_acceptable": D("Share of samples classed acceptable", "0-1"),
        "share_poor": D("Share of samples classed poor", "0-1"),
        "quality_class": D("Class of the median absolute drift (good, acceptable, poor)"),
    },
    "ratings_continuous_grid": {
        "grid_onset": D("Point of the regular 500 ms onset grid", MS),
        "value": D("The last rating sample at or before the grid point"),
        "sample_age_ms": D("How old that sample is at the grid point (large: a gap)", MS),
    },
    "deployment_summary": {
        "rooms": D("Rooms (sessions) of the deployment"),
        "participants": D("Participants of the deployment"),
        "completed_success": D("Participants who finished with completion code SUCCESS"),
        "completion_codes": D("Participants per completion code (MAP)"),
        "median_session_duration_s": D("Median session length, started to completed", "s"),
        "sparse_ratings": D("Sparse ratings of the deployment"),
        "sparse_rating_mean": D("Mean sparse rating value"),
        "continuous_samples": D("Continuous rating samples of the deployment"),
        "continuous_rating_mean": D("Mean continuous rating value"),
        "sync_samples": D("Media sync samples of the deployment"),
        "share_poor_sync": D("Share of sync samples classed poor", "0-1"),
    },
}

# Tables and views: one line each.
TABLES: dict[str, str] = {
    "events": "Everything that happened in a session: components, states, media, responses",
    "ratings_continuous": "Continuous rating samples (every 100-500 ms while rating)",
    "ratings_sparse": "Single ratings given at a moment (button presses, scales)",
    "chat": "Text chat messages between participants",
    "videochat": "LiveKit video-chat events: connections, tracks, connection quality",
    "sync": "Media synchronization samples of multi-participant rooms",
    "components": "What each participant saw: component, configuration, variables",
    "eyetracking": "Gaze samples",
    "recordings": "Audio and video recordings of participants (metadata; files in media/)",
    "participants": "Participants of each room, with completion codes",
    "rooms": "Rooms (sessions) with their deployment and status",
    "deployments": "Deployments (published versions) of each experiment",
    "experiments": "The experiments the API key can read",
    "variables": "Experiment variables set in a room (by seeds or components), over time",
    "deployment_sessions": "Rooms (sessions) of each deployment, as the deployment lists them",
    "agent_decisions": "AI agents' turns in a room (decisions) and their run manifests",
    "agent_runs": "One row per AI agent run in a room: model, usage and cost",
    "media_files": "hs-sync's record of each recording's media file on disk",
    "check_results": "The latest result of each integrity check (`hs-sync check`)",
    "check_issues": "Every issue the latest integrity check runs found",
    "open_issues": "Open issues of the latest check runs, with their hints, errors first",
    "dashboard_deployments": "Deployments as the HyperStudy dashboard lists them",
    "dashboard_rooms": "Rooms (sessions) as the dashboard shows them, with duration",
    "dashboard_participants": "Participants with the data types held for each",
    "participant_rows": "Rows held per data type, room and participant (from the registry)",
    "events_enriched": "Every event with its deployment, room status and participant role",
    "questionnaire_responses": "Questionnaire answers, one row per answered question",
    "comprehension_attempts": "Each comprehension-check attempt",
    "comprehension_checks": "Comprehension-check score and result per participant",
    "sync_samples": "Media sync samples with their absolute drift and quality class",
    "sync_quality": "Media sync quality per participant and room",
    "ratings_continuous_grid": "Continuous ratings resampled onto a 500 ms onset grid",
    "deployment_summary": "One row per deployment: rooms, completion, ratings, sync quality",
}


def describe(table: str, column: str) -> Doc | None:
    """The description of `table.column` (None when the dictionary has none): the
    registry entry's own, else the table's override, else the name's."""
    from hs_sync import registry

    dt = registry.BY_NAME.get(table)
    declared = next((c.doc for c in dt.columns if c.name == column), None) if dt else None
    return declared or OVERRIDES.get(table, {}).get(column) or COLUMNS.get(column)


def table_description(table: str) -> str | None:
    from hs_sync import registry

    dt = registry.BY_NAME.get(table)
    return (dt.doc if dt else None) or TABLES.get(table)


def digest() -> str:
    """A hash of what the comments are made of: the dictionary's texts and the registry's
    tables, columns and their own docs. While it (and the views) stay the same, a
    published database keeps its comments and the transform does not write them again."""
    from hs_sync import registry

    declared = [
        (dt.name, dt.doc, [(c.name, str(c.type), c.json, c.doc) for c in dt.columns])
        for dt in registry.DATA_TYPES
    ]
    lineage = [(c.name, str(c.type), c.doc) for c in registry.LINEAGE_COLUMNS]
    text = repr((COLUMNS, OVERRIDES, TABLES, declared, lineage))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def write_comments(con: duckdb.DuckDBPyConnection) -> int:
    """Set the dictionary's comments on every table, view and column that differs.

    Returns the number of comments written.
    """
    from hs_sync.load.duck import quote

    relations = con.execute(
        "SELECT table_name, comment, 'TABLE' FROM duckdb_tables() "
        "WHERE schema_name = 'main' AND database_name = current_database() "
        "UNION ALL SELECT view_name, comment, 'VIEW' FROM duckdb_views() "
        "WHERE NOT internal AND schema_name = 'main' AND database_name = current_database()"
    ).fetchall()
    kinds = {name: kind for name, _, kind in relations}
    statements: list[str] = []
    for name, comment, kind in relations:
        text = table_description(name)
        if text and text != comment:
            statements.append(f"COMMENT ON {kind} {quote(name)} IS {_literal(text)}")
    columns = con.execute(
        "SELECT table_name, column_name, comment FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND database_name = current_database()"
    ).fetchall()
    for table, column, comment in columns:
        doc = describe(table, column) if table in kinds else None
        if doc and doc.text != comment:
            target = f"{quote(table)}.{quote(column)}"
            statements.append(f"COMMENT ON COLUMN {target} IS {_literal(doc.text)}")
    for statement in statements:
        con.execute(statement)
    return len(statements)


def _literal(text: str) -> str:
    """A SQL string literal of the dictionary's own text (COMMENT ON takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Relation:
    """A table or view of the published database, with its columns described."""

    name: str
    kind: str  # "table" or "view"
    description: str
    columns: tuple[tuple[str, str, Doc | None], ...]  # (name, DuckDB type, doc)


def catalog() -> list[Relation]:
    """Every table and view hs-sync publishes, built in memory from the registry and sql/.

    Registry types first (in registry order), then hs-sync's own tables, then the views.
    """
    from hs_sync import registry
    from hs_sync.load import duck
    from hs_sync.media import manifest

    con = duckdb.connect()
    try:
        duck.ensure_tables(con)
        con.register("__media", manifest.arrow_table([]))
        con.execute(duck.sql("CREATE TABLE {t} AS FROM __media", t=duck.quote(manifest.TABLE)))
        con.unregister("__media")
        duck.create_views(con)  # 90_open_issues.sql creates the check tables too
        rows = con.execute(
            "SELECT c.table_name, CASE WHEN v.view_name IS NULL THEN 'table' ELSE 'view' END, "
            "c.column_name, c.data_type FROM duckdb_columns() c "
            "LEFT JOIN duckdb_views() v ON v.view_name = c.table_name AND NOT v.internal "
            "WHERE c.schema_name = 'main' AND NOT c.internal "
            "ORDER BY c.table_name, c.column_index"
        ).fetchall()
    finally:
        con.close()
    grouped: dict[str, tuple[str, list]] = {}
    for table, kind, column, type_ in rows:
        grouped.setdefault(table, (kind, []))[1].append((column, type_, describe(table, column)))
    order = {dt.name: i for i, dt in enumerate(registry.DATA_TYPES)}

    def rank(name: str) -> tuple:
        kind = grouped[name][0]
        return (name not in order, kind == "view", order.get(name, 0), name)

    return [
        Relation(name, grouped[name][0], table_description(name) or "", tuple(grouped[name][1]))
        for name in sorted(grouped, key=rank)
    ]


def markdown(relations: list[Relation]) -> str:
    """docs/data-dictionary.md: every table and view with its columns."""
    lines = [
        "# Data dictionary",
        "",
        "Every table and view of `hyperstudy.duckdb`. Generated from `hs_sync/dictionary.py`",
        "by `hs-sync schema --markdown > docs/data-dictionary.md`; do not edit by hand.",
        "The same text is in the database as column comments (`duckdb_columns().comment`)",
        "and in Dagster as column descriptions. Times are UTC; onsets are milliseconds from",
        "the start of the experiment in the room.",
        "",
    ]
    for kind, title in (("table", "Tables"), ("view", "Views")):
        lines += [f"## {title}", ""]
        for r in (r for r in relations if r.kind == kind):
            lines += [f"### `{r.name}`", "", r.description + ".", ""]
            lines += ["| column | type | unit | description |", "| --- | --- | --- | --- |"]
            for name, type_, doc in r.columns:
                unit = doc.unit if doc and doc.unit else ""
                text = doc.description if doc else ""
                lines.append(f"| `{name}` | {type_} | {unit} | {text.replace('|', '/')} |")
            lines.append("")
    return "\n".join(lines)
