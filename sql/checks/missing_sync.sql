-- Rooms where two or more participants played media, in an experiment that
-- records sync metrics (synchronized media), but with no sync rows at all.
-- A room where one person played media is never flagged: sync metrics are
-- measured against the host, so a single participant has none.
WITH players AS (
    SELECT roomId, any_value(experimentId) AS experimentId, count(DISTINCT participantId) AS n
    FROM events
    WHERE eventType = 'media.play' AND roomId IS NOT NULL
    GROUP BY roomId
)
SELECT
    'room' AS entity,
    roomId AS id,
    experimentId AS experiment_id,
    roomId AS room_id,
    NULL::VARCHAR AS participant_id,
    n || ' participants played media, no sync metrics' AS detail
FROM players
WHERE n >= 2
  AND experimentId IN (SELECT experimentId FROM sync)
  AND roomId NOT IN (SELECT roomId FROM sync WHERE roomId IS NOT NULL)
ORDER BY experimentId, roomId;
