-- Single flight for paid vendor calls across tenants. A worker about to pay for a request whose
-- answer every tenant shares (a `vendor_response_cache` fingerprint, a ZeroBounce address) first
-- claims it here; a worker of any tenant that finds a live claim does not pay, it polls for the
-- owner's answer instead (leadgen_core/spend/spender.py). The claim is deleted in the transaction
-- that records the answer (or the failure), so "no claim and no answer" means "the owner failed":
-- the next worker claims it and pays itself.
--
-- Global, like vendor_response_cache: every tenant must see every claim, so there is no RLS.
-- The owner's tenant is `owner_tenant`, not `tenant_id`, because a `tenant_id` column marks a
-- tenant-owned, row-level-secured table (sql/003, tests/test_isolation.py). A killed run's claims
-- are deleted by its tenant's next run (`Spender.reconcile`, by owner_tenant and run_id); the
-- expiry is the backstop: an expired claim may be taken over by anyone.
CREATE TABLE vendor_inflight (
    vendor        text NOT NULL,
    fingerprint   text NOT NULL,
    token         uuid NOT NULL,            -- the owning call: only it deletes the claim
    owner_tenant  text NOT NULL,
    run_id        text,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL DEFAULT now() + interval '900 seconds',
    PRIMARY KEY (vendor, fingerprint)
);
CREATE INDEX idx_vendor_inflight_owner ON vendor_inflight (owner_tenant, run_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON vendor_inflight TO leadgen_rw;
