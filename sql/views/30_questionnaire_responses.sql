-- Questionnaire answers, one row per answered question, from `questionnaire` events. A
-- response holds one question (`questionId`, `question`, `answer`, `scale`) or a list of
-- them under `answers`: each item of the list becomes its own row.
CREATE OR REPLACE VIEW questionnaire_responses AS
WITH q AS (
    SELECT e.*,
        unnest(
            CASE WHEN json_type(e.response, '$.answers') = 'ARRAY'
                 THEN json_extract(e.response, '$.answers[*]')
                 ELSE [e.response::JSON] END
        ) AS item
    FROM events e
    WHERE e.category = 'questionnaire'
)
SELECT
    experimentId AS experiment_id,
    roomId AS room_id,
    participantId AS participant_id,
    participantRole AS role,
    stateId AS state_id,
    stateName AS state_name,
    componentType AS component_type,
    timestamp,
    onset,
    item ->> '$.questionId' AS question_id,
    item ->> '$.question' AS question,
    item ->> '$.answer' AS answer,
    TRY_CAST(item ->> '$.answer' AS DOUBLE) AS answer_value,
    TRY_CAST(item ->> '$.scale' AS INTEGER) AS scale_points
FROM q;
