-- Participants whose session ended on a technical fault (lost connection):
-- their data stops at the disconnect.
SELECT
    'participant' AS entity,
    id,
    experimentId AS experiment_id,
    roomId AS room_id,
    id AS participant_id,
    'session ended on a technical fault (' || coalesce(completionCode, status) || ')' AS detail
FROM participants
WHERE completionCode = 'TECHNICAL' OR status = 'disconnected'
ORDER BY experimentId, roomId, id;
