-- The demo source: a clickstream fed from the Kafka topic `events`.
CREATE TABLE events (
    event_time TIMESTAMPTZ NOT NULL,
    user_id BIGINT NOT NULL,
    session_id TEXT,
    event_type TEXT NOT NULL,
    page TEXT,
    country TEXT,
    device TEXT,
    duration_ms INTEGER,
    revenue DOUBLE PRECISION
) WITH (topic = 'events', format = 'json', event_time = 'event_time');
