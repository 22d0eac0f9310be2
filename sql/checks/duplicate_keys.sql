-- Keys that occur more than once in {table} (or rows without a key). Must be none.
SELECT
    'key' AS entity,
    '{name}:' || coalesce(_key, '<null>') AS id,
    NULL::VARCHAR AS experiment_id,
    NULL::VARCHAR AS room_id,
    NULL::VARCHAR AS participant_id,
    count(*) || ' rows in {name} share this key' AS detail
FROM {table}
GROUP BY _key
HAVING count(*) > 1 OR _key IS NULL;
