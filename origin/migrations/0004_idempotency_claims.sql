-- A claim on an idempotency key is fenced: each claim (the first, and every takeover of a
-- request that died in flight) gets a new token, and only the holder of the current token
-- may store the answer. A slow original whose key was taken over fails to store, so its
-- transaction rolls back and only one of the two requests takes effect.
ALTER TABLE idempotency_keys ADD COLUMN claim uuid NOT NULL DEFAULT gen_random_uuid();
