-- Field permissions (docs/field-permissions.md): per tenant, the least role
-- that may write a field (`<entity>.<field>`, validated against the kinds'
-- layouts by src/rules/field-policies.ts). A field without a row is open to
-- editors. Admins replace the whole map at once (PUT /api/policies/fields).
CREATE TABLE field_policies (
  tenant_id  text        NOT NULL,
  field      text        NOT NULL CHECK (length(field) <= 200),
  role       text        NOT NULL CHECK (role IN ('editor', 'admin')),
  -- When and by whom this field's role was last set.
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text        NOT NULL,
  PRIMARY KEY (tenant_id, field)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON field_policies TO concord_app;
ALTER TABLE field_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE field_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON field_policies
  USING (tenant_id = current_tenant()) WITH CHECK (tenant_id = current_tenant());
