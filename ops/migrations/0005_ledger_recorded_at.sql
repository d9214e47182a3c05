-- When the ledger last wrote (govbus status, the LedgerStalled alert) is read from these without a scan.
CREATE INDEX ledger_deliveries_recorded ON ledger_deliveries (recorded_at);
CREATE INDEX ledger_feed_deliveries_recorded ON ledger_feed_deliveries (recorded_at);
CREATE INDEX ledger_rejects_recorded ON ledger_rejects (recorded_at);
