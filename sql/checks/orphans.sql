-- Rows of {table} that point to a room the rooms table does not know, or to a
-- participant the participants table does not list in that room. One row per
-- unknown room or participant.
SELECT
    'room' AS entity,
    t.roomId AS id,
    any_value(t.experimentId) AS experiment_id,
    t.roomId AS room_id,
    NULL::VARCHAR AS participant_id,
    count(*) || ' {name} row(s) point to this unknown room' AS detail
FROM {table} t
WHERE t.roomId IS NOT NULL
  AND t.roomId NOT IN (SELECT id FROM rooms WHERE id IS NOT NULL)
GROUP BY t.roomId
UNION ALL
SELECT
    'participant' AS entity,
    t.{participant} AS id,
    any_value(t.experimentId) AS experiment_id,
    t.roomId AS room_id,
    t.{participant} AS participant_id,
    count(*) || ' {name} row(s) point to this participant, unknown in the room' AS detail
FROM {table} t
WHERE {check_participant}
  AND t.{participant} IS NOT NULL
  AND t.roomId IN (SELECT id FROM rooms WHERE id IS NOT NULL)
  AND NOT EXISTS (
      SELECT 1 FROM participants p WHERE p.id = t.{participant} AND p.roomId = t.roomId)
GROUP BY t.roomId, t.{participant};
