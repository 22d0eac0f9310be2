-- Rooms that have participants but not a single event: the session's data never
-- reached the warehouse (or the server). One row per room.
WITH people AS (
    SELECT roomId, count(DISTINCT id) AS n
    FROM participants
    WHERE roomId IS NOT NULL
    GROUP BY roomId
),
with_events AS (
    SELECT DISTINCT roomId FROM events WHERE roomId IS NOT NULL
)
SELECT
    'room' AS entity,
    r.id AS id,
    r.experimentId AS experiment_id,
    r.id AS room_id,
    NULL::VARCHAR AS participant_id,
    greatest(coalesce(p.n, 0), coalesce(r.participantCount, 0)) || ' participant(s), no events'
        AS detail
FROM rooms r
LEFT JOIN people p ON p.roomId = r.id
WHERE greatest(coalesce(p.n, 0), coalesce(r.participantCount, 0)) > 0
  AND r.id NOT IN (SELECT roomId FROM with_events)
ORDER BY r.experimentId, r.id;
