-- Invoice lines whose invoice header is not in fct_invoice.
SELECT l.source, l.invoice_id, l.line_number
FROM fct_invoice_line l
ANTI JOIN fct_invoice i USING (source, invoice_id)
