-- Rooms (sessions) as the dashboard shows them: participant count, status, start time and
-- duration (started to completed; NULL while a room is still running). A room sent in
-- the dashboard docs' shape (`startTime` and `duration` in ms) gives the same columns.
CREATE OR REPLACE VIEW dashboard_rooms AS
WITH r AS (
    SELECT *,
        coalesce(startedAt, startTime) AS __started,
        coalesce(completedAt, startTime + to_milliseconds(duration)) AS __completed
    FROM rooms
)
SELECT
    r.experimentId AS experiment_id,
    r.deploymentId AS deployment_id,
    coalesce(r.deploymentName, d.name) AS deployment_name,
    r.id AS room_id,
    r.status,
    r.participantCount AS participant_count,
    r.createdAt AS created_at,
    r.__started AS started_at,
    r.__completed AS completed_at,
    coalesce(
        (epoch_ms(r.__completed) - epoch_ms(r.__started)) / 1000.0,
        r.duration / 1000.0
    ) AS duration_s
FROM r
LEFT JOIN deployments d ON d.id = r.deploymentId;
