-- Participants who completed (or were still active longer than $active_timeout_seconds
-- before the snapshot time $as_of) yet have no events, no ratings although their
-- experiment has rating components, or no recordings although video chat was on.
WITH due AS (
    SELECT id, experimentId, roomId
    FROM participants
    WHERE status = 'completed'
       OR (status = 'active'
           AND joinedAt < $as_of::TIMESTAMPTZ - to_seconds($active_timeout_seconds))
),
rating_experiments AS (
    SELECT experimentId FROM components
    WHERE componentType IN ('continuous_rating', 'sparse_rating')
    UNION SELECT experimentId FROM ratings_continuous
    UNION SELECT experimentId FROM ratings_sparse
),
video_experiments AS (
    SELECT experimentId FROM components WHERE componentType = 'video_chat'
    UNION SELECT experimentId FROM videochat
    UNION SELECT experimentId FROM recordings
),
has_events AS (
    SELECT DISTINCT participantId, roomId FROM events
),
has_ratings AS (
    SELECT DISTINCT participantId, roomId FROM ratings_continuous
    UNION SELECT participantId, roomId FROM ratings_sparse
),
has_recordings AS (
    SELECT DISTINCT participantId, roomId FROM recordings
),
flags AS (
    SELECT
        d.*,
        e.participantId IS NULL AS no_events,
        r.participantId IS NULL
            AND d.experimentId IN (SELECT experimentId FROM rating_experiments) AS no_ratings,
        c.participantId IS NULL
            AND d.experimentId IN (SELECT experimentId FROM video_experiments) AS no_recordings
    FROM due d
    LEFT JOIN has_events e ON e.participantId = d.id AND e.roomId = d.roomId
    LEFT JOIN has_ratings r ON r.participantId = d.id AND r.roomId = d.roomId
    LEFT JOIN has_recordings c ON c.participantId = d.id AND c.roomId = d.roomId
)
SELECT
    'participant' AS entity,
    id,
    experimentId AS experiment_id,
    roomId AS room_id,
    id AS participant_id,
    concat_ws(', ',
        CASE WHEN no_events THEN 'no events' END,
        CASE WHEN no_ratings THEN 'no ratings' END,
        CASE WHEN no_recordings THEN 'no recordings' END) AS detail
FROM flags
WHERE no_events OR no_ratings OR no_recordings
ORDER BY experimentId, roomId, id;
