-- Good Sign invoice lines from the datasync InvoiceLines export, in the shared shape.
SELECT
    'gsapi' AS source,
    iheader_id::VARCHAR AS invoice_id,
    line_no AS line_number,
    productcode || ' ' || descr AS product,
    amount AS quantity,
    price_per_unit AS unit_price,
    price AS net_amount,
    vat AS tax_amount,
    currency
FROM gsapi_datasync_invoice_lines
