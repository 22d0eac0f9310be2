-- Participants as the dashboard shows them (role, status, completion code), their rows of
-- each data type whose rows name a participant (one column per type, from the
-- registry-built `participant_counts`: added types included), and which data types the
-- warehouse holds for each of them (`data_types`).
CREATE OR REPLACE VIEW dashboard_participants AS
WITH held AS (
    SELECT room_id, participant_id, list(data_type ORDER BY data_type) AS data_types
    FROM participant_rows WHERE row_count > 0 GROUP BY ALL
)
SELECT
    p.experimentId AS experiment_id,
    p.deploymentId AS deployment_id,
    p.roomId AS room_id,
    p.id AS participant_id,
    p.role,
    p.status,
    p.completionCode AS completion_code,
    p.joinedAt AS joined_at,
    p.completedAt AS completed_at,
    coalesce(COLUMNS(c.* EXCLUDE (room_id, participant_id)), 0),
    coalesce(held.data_types, []) AS data_types
FROM participants p
LEFT JOIN participant_counts c ON c.room_id = p.roomId AND c.participant_id = p.id
LEFT JOIN held ON held.room_id = p.roomId AND held.participant_id = p.id;
