-- Good Sign invoice headers from the datasync Invoices export (tenant-defined fields, typed by
-- inference: iheader_id, ext_invoice_id, net_amount, vat_amount, gross_amount as the sandbox sends).
SELECT
    'gsapi' AS source,
    iheader_id::VARCHAR AS invoice_id,
    ext_invoice_id AS invoice_number,
    invoice_date,
    org_id::VARCHAR AS organization_id,
    organization AS organization_name,
    currency,
    net_amount,
    vat_amount AS tax_amount,
    gross_amount AS total_amount,
    status = 'Delivered' AS paid
FROM gsapi_datasync_invoices
