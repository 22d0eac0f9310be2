-- Every event with its deployment, room and the participant's role.
CREATE OR REPLACE VIEW events_enriched AS
SELECT
    e.* EXCLUDE (_extra, _synced_at, _raw_file),
    r.deploymentId AS deployment_id,
    coalesce(r.deploymentName, d.name) AS deployment_name,
    r.status AS room_status,
    coalesce(p.role, e.participantRole) AS role,
    p.completionCode AS completion_code
FROM events e
LEFT JOIN rooms r ON r.id = e.roomId
LEFT JOIN deployments d ON d.id = r.deploymentId
LEFT JOIN participants p ON p.id = e.participantId AND p.roomId = e.roomId;
