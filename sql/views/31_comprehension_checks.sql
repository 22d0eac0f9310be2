-- Comprehension checks: each attempt (question, answer, correct), and per participant the
-- score (share of attempts correct) and whether they passed (the last attempt correct).
CREATE OR REPLACE VIEW comprehension_attempts AS
SELECT
    e.experimentId AS experiment_id,
    e.roomId AS room_id,
    e.participantId AS participant_id,
    e.timestamp,
    e.onset,
    coalesce(TRY_CAST(e.response ->> '$.attempt' AS INTEGER),
             row_number() OVER (PARTITION BY e.roomId, e.participantId ORDER BY e.onset))
        AS attempt,
    coalesce(e.response ->> '$.question', e.stateName, 'instructions') AS question,
    e.response ->> '$.answer' AS answer,
    TRY_CAST(e.response ->> '$.correct' AS BOOLEAN) AS correct
FROM events e
WHERE e.eventType = 'instructions.comprehension_check';

CREATE OR REPLACE VIEW comprehension_checks AS
SELECT
    experiment_id,
    room_id,
    participant_id,
    count(*) AS attempts,
    count(*) FILTER (WHERE correct) AS correct_attempts,
    round(count(*) FILTER (WHERE correct) / count(*), 3) AS score,
    coalesce(arg_max(correct, attempt), false) AS passed,
    CASE WHEN coalesce(arg_max(correct, attempt), false) THEN 'pass' ELSE 'fail' END AS result
FROM comprehension_attempts
GROUP BY ALL;
