-- Continuous ratings resampled onto a regular 500 ms onset grid per participant and
-- component: each grid point carries the last sample at or before it (aligned by onset,
-- so participants of one room line up). `sample_age_ms` shows how stale the value is;
-- a large age marks a gap in the stream. Change `step_ms` to resample differently.
CREATE OR REPLACE VIEW ratings_continuous_grid AS
WITH params AS (SELECT 500 AS step_ms),
spans AS (
    SELECT experimentId, roomId, participantId, componentId,
           min(onset) AS first_onset, max(onset) AS last_onset
    FROM ratings_continuous
    GROUP BY ALL
),
grid AS (
    SELECT s.experimentId, s.roomId, s.participantId, s.componentId, g.grid_onset
    FROM spans s, params,
         LATERAL (SELECT unnest(generate_series(
             ceil(s.first_onset / params.step_ms)::BIGINT * params.step_ms,
             floor(s.last_onset)::BIGINT,
             params.step_ms)) AS grid_onset) g
)
SELECT
    g.experimentId AS experiment_id,
    g.roomId AS room_id,
    g.participantId AS participant_id,
    g.componentId AS component_id,
    g.grid_onset,
    r.value,
    g.grid_onset - r.onset AS sample_age_ms
FROM grid g
ASOF LEFT JOIN ratings_continuous r
    ON r.roomId = g.roomId
   AND r.participantId = g.participantId
   AND r.componentId = g.componentId
   AND r.onset <= g.grid_onset;
