-- Good Sign invoice headers from the datasync Invoices export, in the shared shape. The export's fields
-- are the tenant's: each {{…}} names a field of sql/fieldmap/fields.yaml, mapped to the tenant's column by
-- sources.gsapi.fields.datasync_invoices (defaults: the sandbox's tenant a).
SELECT
    'gsapi' AS source,
    {{gsapi_datasync_invoices.invoice_id}}::VARCHAR AS invoice_id,
    {{gsapi_datasync_invoices.invoice_number}}::VARCHAR AS invoice_number,
    {{gsapi_datasync_invoices.invoice_date}} AS invoice_date,
    {{gsapi_datasync_invoices.organization_id}}::VARCHAR AS organization_id,
    {{gsapi_datasync_invoices.organization_name}} AS organization_name,
    {{gsapi_datasync_invoices.currency}} AS currency,
    {{gsapi_datasync_invoices.net_amount}} AS net_amount,
    {{gsapi_datasync_invoices.tax_amount}} AS tax_amount,
    {{gsapi_datasync_invoices.total_amount}} AS total_amount,
    {{gsapi_datasync_invoices.status}} = 'Delivered' AS paid
FROM gsapi_datasync_invoices
