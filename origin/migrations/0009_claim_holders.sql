-- Which origin process holds an idempotency key in flight ("<hostname>:<listen address>").
-- An origin starting again on the same node releases the claims its dead predecessor left,
-- so a fan's retry after a crash runs at once instead of after in_flight_timeout_s. A
-- release is always safe: the claim token fences the original's store.
ALTER TABLE idempotency_keys ADD COLUMN holder text;
CREATE INDEX idempotency_keys_in_flight ON idempotency_keys (holder) WHERE response_status IS NULL;
