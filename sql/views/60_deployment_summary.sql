-- One row per deployment across every synced experiment: rooms, participants,
-- completion codes, median session duration, rating counts and means, share of poor sync.
CREATE OR REPLACE VIEW deployment_summary AS
WITH
dep AS (
    SELECT id AS deployment_id, experimentId AS experiment_id, name AS deployment_name
    FROM deployments
    UNION
    SELECT DISTINCT deploymentId, experimentId, deploymentName FROM rooms
    WHERE deploymentId NOT IN (SELECT id FROM deployments)
),
rm AS (
    SELECT deploymentId AS deployment_id, count(*) AS rooms FROM rooms GROUP BY ALL
),
-- dashboard_rooms reads both room shapes (startedAt/completedAt, startTime/duration)
du AS (
    SELECT deployment_id, median(duration_s) AS median_session_duration_s
    FROM (SELECT DISTINCT experiment_id, room_id, deployment_id, duration_s FROM dashboard_rooms)
    GROUP BY ALL
),
pt AS (
    SELECT r.deploymentId AS deployment_id,
           count(*) AS participants,
           count(*) FILTER (WHERE p.completionCode = 'SUCCESS') AS completed_success,
           histogram(p.completionCode) AS completion_codes
    FROM participants p JOIN rooms r ON r.id = p.roomId
    GROUP BY ALL
),
rs AS (
    SELECT r.deploymentId AS deployment_id, count(*) AS n, avg(s.value) AS mean
    FROM ratings_sparse s JOIN rooms r ON r.id = s.roomId GROUP BY ALL
),
rc AS (
    SELECT r.deploymentId AS deployment_id, count(*) AS n, avg(c.value) AS mean
    FROM ratings_continuous c JOIN rooms r ON r.id = c.roomId GROUP BY ALL
),
sy AS (
    SELECT r.deploymentId AS deployment_id, count(*) AS samples,
           count(*) FILTER (WHERE s.quality_class = 'poor') / count(*) AS share_poor
    FROM sync_samples s JOIN rooms r ON r.id = s.roomId GROUP BY ALL
)
SELECT
    dep.experiment_id,
    dep.deployment_id,
    dep.deployment_name,
    coalesce(rm.rooms, 0) AS rooms,
    coalesce(pt.participants, 0) AS participants,
    coalesce(pt.completed_success, 0) AS completed_success,
    pt.completion_codes,
    du.median_session_duration_s,
    coalesce(rs.n, 0) AS sparse_ratings,
    rs.mean AS sparse_rating_mean,
    coalesce(rc.n, 0) AS continuous_samples,
    rc.mean AS continuous_rating_mean,
    coalesce(sy.samples, 0) AS sync_samples,
    round(sy.share_poor, 4) AS share_poor_sync
FROM dep
LEFT JOIN rm USING (deployment_id)
LEFT JOIN du USING (deployment_id)
LEFT JOIN pt USING (deployment_id)
LEFT JOIN rs USING (deployment_id)
LEFT JOIN rc USING (deployment_id)
LEFT JOIN sy USING (deployment_id);
