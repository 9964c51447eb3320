-- Invoices whose header net amount differs from the sum of their lines by a cent or more.
SELECT source, invoice_id, currency, header_net_amount, lines_net_amount, difference
FROM reconciliation_invoice_lines
WHERE lines > 0 AND abs(difference) >= 0.01
