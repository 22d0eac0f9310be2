-- Participants as the dashboard shows them (role, status, completion code), rows of the
-- built-in data types, and which data types the warehouse holds for each of them
-- (`data_types`, from the registry-built `participant_rows`: added types included).
CREATE OR REPLACE VIEW dashboard_participants AS
WITH
ev AS (SELECT roomId, participantId, count(*) AS n FROM events GROUP BY ALL),
rc AS (SELECT roomId, participantId, count(*) AS n FROM ratings_continuous GROUP BY ALL),
rs AS (SELECT roomId, participantId, count(*) AS n FROM ratings_sparse GROUP BY ALL),
ch AS (SELECT roomId, senderId AS participantId, count(*) AS n FROM chat GROUP BY ALL),
vc AS (SELECT roomId, participantId, count(*) AS n FROM videochat GROUP BY ALL),
sy AS (SELECT roomId, participantId, count(*) AS n FROM sync GROUP BY ALL),
co AS (SELECT roomId, participantId, count(*) AS n FROM components GROUP BY ALL),
et AS (SELECT roomId, participantId, count(*) AS n FROM eyetracking GROUP BY ALL),
re AS (SELECT roomId, participantId, count(*) AS n FROM recordings GROUP BY ALL),
held AS (
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
    coalesce(ev.n, 0) AS events,
    coalesce(rc.n, 0) AS ratings_continuous,
    coalesce(rs.n, 0) AS ratings_sparse,
    coalesce(ch.n, 0) AS chat_messages,
    coalesce(vc.n, 0) AS videochat,
    coalesce(sy.n, 0) AS sync,
    coalesce(co.n, 0) AS components,
    coalesce(et.n, 0) AS eyetracking,
    coalesce(re.n, 0) AS recordings,
    coalesce(held.data_types, []) AS data_types
FROM participants p
LEFT JOIN ev ON ev.roomId = p.roomId AND ev.participantId = p.id
LEFT JOIN rc ON rc.roomId = p.roomId AND rc.participantId = p.id
LEFT JOIN rs ON rs.roomId = p.roomId AND rs.participantId = p.id
LEFT JOIN ch ON ch.roomId = p.roomId AND ch.participantId = p.id
LEFT JOIN vc ON vc.roomId = p.roomId AND vc.participantId = p.id
LEFT JOIN sy ON sy.roomId = p.roomId AND sy.participantId = p.id
LEFT JOIN co ON co.roomId = p.roomId AND co.participantId = p.id
LEFT JOIN et ON et.roomId = p.roomId AND et.participantId = p.id
LEFT JOIN re ON re.roomId = p.roomId AND re.participantId = p.id
LEFT JOIN held ON held.room_id = p.roomId AND held.participant_id = p.id;
