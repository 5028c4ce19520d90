-- Hourly traffic and revenue by event type and country.
CREATE MATERIALIZED VIEW events_hourly AS
SELECT date_trunc('hour', event_time) AS hour,
       event_type,
       country,
       count(*) AS events,
       sum(revenue) AS revenue
FROM events
GROUP BY 1, 2, 3;
