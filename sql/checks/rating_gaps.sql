-- Continuous ratings are sampled every 100-500 ms while a participant rates; a
-- pause longer than $gap_ms between two samples of one rating component means
-- samples are missing. One row per gap; the id names the sample before it.
WITH samples AS (
    SELECT
        experimentId,
        roomId,
        participantId,
        componentId,
        timestamp,
        lag(timestamp) OVER (
            PARTITION BY roomId, participantId, componentId ORDER BY timestamp
        ) AS previous
    FROM ratings_continuous
    WHERE timestamp IS NOT NULL
)
SELECT
    'gap' AS entity,
    roomId || '/' || participantId || '/' || componentId || '@'
        || strftime(previous, '%Y-%m-%dT%H:%M:%S.%gZ') AS id,
    experimentId AS experiment_id,
    roomId AS room_id,
    participantId AS participant_id,
    (epoch_ms(timestamp) - epoch_ms(previous)) || ' ms without a sample, '
        || strftime(previous, '%Y-%m-%dT%H:%M:%S.%gZ') || ' to '
        || strftime(timestamp, '%Y-%m-%dT%H:%M:%S.%gZ') AS detail
FROM samples
WHERE previous IS NOT NULL
  AND epoch_ms(timestamp) - epoch_ms(previous) > $gap_ms
ORDER BY experimentId, roomId, participantId, previous;
