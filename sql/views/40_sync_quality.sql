-- Media sync quality. Each sample is classed by its absolute drift from the host:
-- under 100 ms good, 100 to 500 ms acceptable, over 500 ms poor. Per room and participant,
-- the class of the median absolute drift, and the share of samples in each class.
CREATE OR REPLACE VIEW sync_samples AS
SELECT
    s.*,
    abs(s.timeDrift) AS abs_drift_ms,
    CASE
        WHEN abs(s.timeDrift) < 100 THEN 'good'
        WHEN abs(s.timeDrift) <= 500 THEN 'acceptable'
        ELSE 'poor'
    END AS quality_class
FROM sync s
WHERE s.timeDrift IS NOT NULL;

CREATE OR REPLACE VIEW sync_quality AS
SELECT
    experimentId AS experiment_id,
    roomId AS room_id,
    participantId AS participant_id,
    count(*) AS samples,
    median(abs_drift_ms) AS median_abs_drift_ms,
    quantile_cont(abs_drift_ms, 0.95) AS p95_abs_drift_ms,
    max(abs_drift_ms) AS max_abs_drift_ms,
    avg(latency) AS mean_latency_ms,
    round(count(*) FILTER (WHERE quality_class = 'good') / count(*), 4) AS share_good,
    round(count(*) FILTER (WHERE quality_class = 'acceptable') / count(*), 4) AS share_acceptable,
    round(count(*) FILTER (WHERE quality_class = 'poor') / count(*), 4) AS share_poor,
    CASE
        WHEN median(abs_drift_ms) < 100 THEN 'good'
        WHEN median(abs_drift_ms) <= 500 THEN 'acceptable'
        ELSE 'poor'
    END AS quality_class
FROM sync_samples
GROUP BY ALL;
