-- Invoice headers of both sources: one row per (source, invoice_id), amounts in the invoice currency.
SELECT source, invoice_id, invoice_number, invoice_date, organization_id, organization_name, currency,
       net_amount::DECIMAL(38,4) AS net_amount, tax_amount::DECIMAL(38,4) AS tax_amount,
       total_amount::DECIMAL(38,4) AS total_amount, paid
FROM stg_signicat_invoices
UNION ALL
SELECT source, invoice_id, invoice_number, invoice_date, organization_id, organization_name, currency,
       net_amount::DECIMAL(38,4), tax_amount::DECIMAL(38,4), total_amount::DECIMAL(38,4), paid
FROM stg_gsapi_invoices
