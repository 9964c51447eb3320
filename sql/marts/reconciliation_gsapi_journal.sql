-- Good Sign datasync invoices against the Summary invoice journal: one row per invoice id found in
-- either; missing_in tells which side lacks it, difference = datasync - journal.
SELECT coalesce(d.invoice_id, j.invoice_id) AS iheader_id,
       d.net_amount AS datasync_net_amount, j.net_amount AS journal_net_amount,
       CASE WHEN d.invoice_id IS NULL THEN 'datasync' WHEN j.invoice_id IS NULL THEN 'journal' END AS missing_in,
       coalesce(d.net_amount, 0) - coalesce(j.net_amount, 0) AS difference
FROM (SELECT {{gsapi_datasync_invoices.invoice_id}}::VARCHAR AS invoice_id, {{gsapi_datasync_invoices.net_amount}} AS net_amount
      FROM gsapi_datasync_invoices) d
FULL OUTER JOIN (SELECT {{gsapi_invoice_journal_summary.invoice_id}}::VARCHAR AS invoice_id, {{gsapi_invoice_journal_summary.net_amount}} AS net_amount
                 FROM gsapi_invoice_journal_summary) j ON d.invoice_id = j.invoice_id
