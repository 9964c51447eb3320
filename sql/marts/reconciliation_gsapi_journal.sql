-- Good Sign datasync invoices against the Summary invoice journal: one row per iheader_id found in
-- either; missing_in tells which side lacks it, difference = datasync - journal.
SELECT coalesce(d.iheader_id, j.iheader_id) AS iheader_id,
       d.net_amount AS datasync_net_amount, j.net_amount AS journal_net_amount,
       CASE WHEN d.iheader_id IS NULL THEN 'datasync' WHEN j.iheader_id IS NULL THEN 'journal' END AS missing_in,
       coalesce(d.net_amount, 0) - coalesce(j.net_amount, 0) AS difference
FROM gsapi_datasync_invoices d
FULL OUTER JOIN gsapi_invoice_journal_summary j ON d.iheader_id = j.iheader_id
