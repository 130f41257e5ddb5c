-- Open reservations, each with the run that made it. A reservation lives from the moment its
-- units are booked on the ledger until the vendor's answer is recorded (cache row, settlement and
-- the deletion of this row in one transaction) or the call fails. A run killed in between leaves
-- its rows behind; the tenant's next run reconciles them (leadgen_core/spend.py): their units
-- move to the ledger's uncertain units, since the vendor may or may not have charged the call.
CREATE TABLE spend_reservations (
    reservation_id  bigserial PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants(tenant_id),
    usage_date      date NOT NULL,
    vendor          text NOT NULL,
    units           bigint NOT NULL CHECK (units >= 0),
    run_id          text,
    fingerprint     text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_spend_reservations_tenant ON spend_reservations (tenant_id, run_id);

ALTER TABLE spend_reservations ENABLE ROW LEVEL SECURITY;
ALTER TABLE spend_reservations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON spend_reservations
    USING (tenant_id = current_setting('request.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('request.tenant_id', true));

GRANT SELECT, INSERT, DELETE ON spend_reservations TO leadgen_rw;
GRANT USAGE ON SEQUENCE spend_reservations_reservation_id_seq TO leadgen_rw;
