-- Signicat invoice lines in the shared shape.
SELECT
    'signicat' AS source,
    invoice_number AS invoice_id,
    line_number,
    product_name AS product,
    invoiced_quantity AS quantity,
    sales_price AS unit_price,
    line_total_charge_amount - line_total_discount_amount AS net_amount, -- as the header: charges minus discounts
    line_total_tax_amount AS tax_amount,
    currency_code AS currency
FROM signicat_invoice_lines
