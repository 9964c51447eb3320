-- Invoice lines of both sources: one row per (source, invoice_id, line_number).
SELECT source, invoice_id, line_number, product, quantity::DECIMAL(38,6) AS quantity,
       unit_price::DECIMAL(38,6) AS unit_price, net_amount::DECIMAL(38,4) AS net_amount,
       tax_amount::DECIMAL(38,4) AS tax_amount, currency
FROM stg_signicat_invoice_lines
UNION ALL
SELECT source, invoice_id, line_number, product, quantity::DECIMAL(38,6), unit_price::DECIMAL(38,6),
       net_amount::DECIMAL(38,4), tax_amount::DECIMAL(38,4), currency
FROM stg_gsapi_invoice_lines
