-- chatstream schema: a cancel that outlives a lost notification (docs/architecture.md, "Durable runs").
--  * runs.cancel_reason: set by POST /chat/cancel (and a multitask "interrupt") on a running run of
--    another worker, in the same transaction as its NOTIFY chatstream_cancel. The owner hears the
--    NOTIFY at once; one sent while the owner's LISTEN connection was down is lost, so the owner,
--    each time its listener LISTENs again, asks which of its running runs have a cancel_reason and
--    stops them. NULL: no cancel asked. Not indexed: set on a handful of rows, read by primary key.
ALTER TABLE runs ADD COLUMN cancel_reason text;
