-- Deployments as the HyperStudy dashboard lists them, across every synced experiment:
-- status, participant count, created, plus the rooms and participants synced for each.
CREATE OR REPLACE VIEW dashboard_deployments AS
SELECT
    d.experimentId AS experiment_id,
    e.name AS experiment_name,
    d.id AS deployment_id,
    d.name AS deployment_name,
    d.status,
    d.participantCount AS participant_count,
    d.createdAt AS created_at,
    coalesce(r.rooms, 0) AS rooms_synced,
    coalesce(p.participants, 0) AS participants_synced
FROM deployments d
LEFT JOIN experiments e ON e.id = d.experimentId
LEFT JOIN (SELECT deploymentId, count(*) AS rooms FROM rooms GROUP BY ALL) r
    ON r.deploymentId = d.id
LEFT JOIN (SELECT deploymentId, count(*) AS participants FROM participants GROUP BY ALL) p
    ON p.deploymentId = d.id;
