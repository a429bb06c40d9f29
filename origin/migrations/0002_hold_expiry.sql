-- The sweeper finds expired holds through the inventory itself, so seats of holds that
-- expired lazily (another fan took some of their seats) are found too.
CREATE INDEX seat_inventory_held_expiry ON seat_inventory (hold_expires_at) WHERE status = 'held';
