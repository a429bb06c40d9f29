-- The idempotency key of the confirmation that last marked a payment `processing`. A
-- confirmation that died after that mark and before the provider answered is resumed by
-- its retry under the same key (the provider answers a repeated key once); any other
-- confirmation of a `processing` payment is still refused.
ALTER TABLE payments ADD COLUMN confirm_key text;
