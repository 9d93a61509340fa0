-- The time zone an inspection's times are shown in (IANA name): the site's zone, else the
-- creating browser's. Old rows have none and are shown in UTC.
ALTER TABLE inspections ADD COLUMN time_zone TEXT;
-- "<caller id>:<Idempotency-Key>" of the create request that made the row: a repeated
-- request finds it instead of making a second inspection. NULLs do not collide.
ALTER TABLE inspections ADD COLUMN create_key TEXT;
CREATE UNIQUE INDEX inspections_create_key ON inspections (create_key);
-- The list's search covers the address too. LOWER folds only ASCII in SQLite, so Cyrillic
-- capitals of rows written before this stay as they are; new rows are folded by the server.
UPDATE inspections SET search_text = search_text || ' ' || LOWER(business_address);
