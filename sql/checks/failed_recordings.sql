-- Recordings the server reports as failed: no file will ever be available.
SELECT
    'recording' AS entity,
    recordingId AS id,
    experimentId AS experiment_id,
    roomId AS room_id,
    participantId AS participant_id,
    coalesce(mediaType, 'media') || ' recording failed on the server' AS detail
FROM recordings
WHERE status = 'failed'
ORDER BY experimentId, roomId, recordingId;
