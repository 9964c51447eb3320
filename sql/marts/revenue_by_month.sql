-- Invoiced revenue per month, source, organisation and currency (never summed across currencies).
SELECT source, date_trunc('month', invoice_date)::DATE AS month, organization_id, currency,
       count(*) AS invoices, sum(net_amount) AS net_amount, sum(tax_amount) AS tax_amount, sum(total_amount) AS total_amount
FROM fct_invoice
GROUP BY ALL
