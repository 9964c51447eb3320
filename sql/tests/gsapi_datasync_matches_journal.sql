-- Good Sign invoices missing from the datasync export or the Summary journal, or whose net amounts
-- differ by a cent or more.
SELECT iheader_id, datasync_net_amount, journal_net_amount, missing_in, difference
FROM reconciliation_gsapi_journal
WHERE missing_in IS NOT NULL OR abs(difference) >= 0.01
