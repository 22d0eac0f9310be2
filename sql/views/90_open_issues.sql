-- Every open issue the integrity checks found, as of each check's latest run
-- (`hs-sync check` records its results here). The two tables are created here
-- so the view exists before the first check run; the check run fills them.
CREATE TABLE IF NOT EXISTS check_results (
    check_name VARCHAR,
    severity VARCHAR,
    status VARCHAR,
    passed BOOLEAN,
    issue_count BIGINT,
    sample VARCHAR[],
    hint VARCHAR,
    details JSON,
    checked_at TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS check_issues (
    check_name VARCHAR,
    severity VARCHAR,
    entity VARCHAR,
    id VARCHAR,
    experiment_id VARCHAR,
    room_id VARCHAR,
    participant_id VARCHAR,
    detail VARCHAR,
    checked_at TIMESTAMPTZ
);

CREATE OR REPLACE VIEW open_issues AS
SELECT
    i.check_name,
    i.severity,
    i.entity,
    i.id,
    i.experiment_id,
    i.room_id,
    i.participant_id,
    i.detail,
    r.hint,
    i.checked_at
FROM check_issues i
LEFT JOIN check_results r USING (check_name)
ORDER BY i.severity = 'error' DESC, i.check_name, i.experiment_id, i.id;
