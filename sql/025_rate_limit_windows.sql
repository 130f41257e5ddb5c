-- Request quotas over long windows, shared by every process: Lusha's plans allow so many requests
-- an hour and a day (Premium 1,800/h and 18,000/day). One row per bucket and window start (windows
-- aligned to the epoch: whole hours, whole UTC days); `used` counts the requests taken in it.
CREATE TABLE rate_limit_windows (
    bucket        text NOT NULL,
    window_s      integer NOT NULL CHECK (window_s > 0),
    window_start  timestamptz NOT NULL,
    used          integer NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (bucket, window_s, window_start)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_windows TO leadgen_rw;
