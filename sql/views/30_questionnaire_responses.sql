-- Questionnaire answers, one row per answered question, from `questionnaire` events.
CREATE OR REPLACE VIEW questionnaire_responses AS
SELECT
    e.experimentId AS experiment_id,
    e.roomId AS room_id,
    e.participantId AS participant_id,
    e.participantRole AS role,
    e.stateId AS state_id,
    e.stateName AS state_name,
    e.componentType AS component_type,
    e.timestamp,
    e.onset,
    e.response ->> '$.questionId' AS question_id,
    e.response ->> '$.question' AS question,
    e.response ->> '$.answer' AS answer,
    TRY_CAST(e.response ->> '$.answer' AS DOUBLE) AS answer_value,
    TRY_CAST(e.response ->> '$.scale' AS INTEGER) AS scale_points
FROM events e
WHERE e.category = 'questionnaire';
