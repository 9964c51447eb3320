-- Every organisation of both sources: one row per (source, organization_id), with its parent.
SELECT 'signicat' AS source, id AS organization_id, name, country, parent_organization__id AS parent_organization_id
FROM signicat_organizations
UNION ALL
SELECT 'gsapi', org_id::VARCHAR, company_name, country, parent_org_id::VARCHAR
FROM gsapi_organizations
