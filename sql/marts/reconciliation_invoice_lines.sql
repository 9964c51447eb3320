-- Each invoice header's net amount against the sum of its lines; difference = header - lines.
SELECT i.source, i.invoice_id, i.currency, i.net_amount AS header_net_amount,
       coalesce(l.lines_net_amount, 0) AS lines_net_amount, coalesce(l.lines, 0) AS lines,
       i.net_amount - coalesce(l.lines_net_amount, 0) AS difference
FROM fct_invoice i
LEFT JOIN (SELECT source, invoice_id, sum(net_amount) AS lines_net_amount, count(*) AS lines
           FROM fct_invoice_line GROUP BY ALL) l USING (source, invoice_id)
