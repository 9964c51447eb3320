-- Signicat invoice headers in the shape shared by both sources. net = charges minus discounts (the
-- sum of the lines' line_amount), tax, total = net + tax, as the API reports them.
SELECT
    'signicat' AS source,
    invoice_number AS invoice_id,
    invoice_number,
    invoice_date,
    organization_id,
    organization_name,
    currency_code AS currency,
    total_charge_amount - total_discount_amount AS net_amount,
    total_tax_amount AS tax_amount,
    total_invoice_amount AS total_amount,
    settled AS paid
FROM signicat_invoices
