-- Rooms (sessions) as the dashboard shows them: participant count, status, start time and
-- duration (started to completed; NULL while a room is still running).
CREATE OR REPLACE VIEW dashboard_rooms AS
SELECT
    r.experimentId AS experiment_id,
    r.deploymentId AS deployment_id,
    coalesce(r.deploymentName, d.name) AS deployment_name,
    r.id AS room_id,
    r.status,
    r.participantCount AS participant_count,
    r.createdAt AS created_at,
    r.startedAt AS started_at,
    r.completedAt AS completed_at,
    (epoch_ms(r.completedAt) - epoch_ms(r.startedAt)) / 1000.0 AS duration_s
FROM rooms r
LEFT JOIN deployments d ON d.id = r.deploymentId;
