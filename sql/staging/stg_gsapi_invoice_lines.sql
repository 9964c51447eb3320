-- Good Sign invoice lines from the datasync InvoiceLines export, in the shared shape. The fields are the
-- tenant's, mapped by sources.gsapi.fields.datasync_invoice_lines (sql/fieldmap/fields.yaml).
SELECT
    'gsapi' AS source,
    {{gsapi_datasync_invoice_lines.invoice_id}}::VARCHAR AS invoice_id,
    {{gsapi_datasync_invoice_lines.line_number}} AS line_number,
    {{gsapi_datasync_invoice_lines.product_code}} || ' ' || {{gsapi_datasync_invoice_lines.product_name}} AS product,
    {{gsapi_datasync_invoice_lines.quantity}} AS quantity,
    {{gsapi_datasync_invoice_lines.unit_price}} AS unit_price,
    {{gsapi_datasync_invoice_lines.net_amount}} AS net_amount,
    {{gsapi_datasync_invoice_lines.tax_amount}} AS tax_amount,
    {{gsapi_datasync_invoice_lines.currency}} AS currency
FROM gsapi_datasync_invoice_lines
