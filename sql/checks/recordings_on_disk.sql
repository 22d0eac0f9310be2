-- Recordings complete on the server, with what the media manifest ({media})
-- says about their file. The file itself is checked on disk by the caller.
SELECT
    r.recordingId AS recording_id,
    r.experimentId AS experiment_id,
    r.roomId AS room_id,
    r.participantId AS participant_id,
    r.fileSize AS file_size,
    m.{path} AS local_path,
    m.{bytes} AS bytes,
    m.{sha256} AS sha256,
    m.{status} AS media_status,
    {reason} AS media_reason
FROM recordings r
LEFT JOIN {media} m ON m.{recording} = r.recordingId
WHERE r.status = 'complete'
ORDER BY r.experimentId, r.roomId, r.recordingId;
