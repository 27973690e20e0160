-- The invoice kind (src/documents/invoice.ts): its header table and its lines,
-- kept in step like quotes and quote_lines (schema/002_projections.sql). The
-- columns are the kind module's TableSpec (test/kinds.test.ts compares them).

CREATE TABLE invoices (
  tenant_id     text          NOT NULL,
  id            text          NOT NULL,
  number        text,
  -- The quote it bills, if any.
  quote_id      text,
  customer_id   text,
  customer_name text,
  status        text,
  currency      text,
  issue_date    date,
  due_date      date,
  tax_pct       numeric,
  notes         text          NOT NULL DEFAULT '',
  line_count    integer       NOT NULL DEFAULT 0,
  -- NULL when a line's value breaks the layout or the sum leaves numeric(14,2).
  subtotal      numeric(14,2),
  total         numeric(14,2),
  version       bigint        NOT NULL,
  updated_at    timestamptz   NOT NULL,
  updated_by    text,
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE invoice_lines (
  tenant_id    text          NOT NULL,
  invoice_id   text          NOT NULL,
  id           text          NOT NULL,
  position     integer       NOT NULL,
  sku          text,
  description  text,
  quantity     numeric,
  unit_price   numeric,
  discount_pct numeric,
  line_total   numeric(14,2),
  updated_at   timestamptz   NOT NULL,
  updated_by   text,
  PRIMARY KEY (tenant_id, invoice_id, id),
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id) ON DELETE CASCADE
);

GRANT SELECT, INSERT, UPDATE ON invoices TO concord_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON invoice_lines TO concord_app;

-- The tenant wall, as on every table.
DO $$
DECLARE
  projected text;
BEGIN
  FOREACH projected IN ARRAY ARRAY['invoices', 'invoice_lines'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', projected);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', projected);
    EXECUTE format('CREATE POLICY tenant_wall ON %I USING (tenant_id = current_tenant()) WITH CHECK (tenant_id = current_tenant())', projected);
  END LOOP;
END
$$;
