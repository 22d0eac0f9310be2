-- Rows of {table} landed for one experiment (its raw folder $prefix), per room,
-- counting only rows up to $until (the time the warehouse is synced to) when set.
SELECT {room} AS room_id, count(*) AS n
FROM {table}
WHERE starts_with(_raw_file, $prefix)
  AND ($until IS NULL OR {cursor} <= $until::TIMESTAMPTZ)
GROUP BY {room};
