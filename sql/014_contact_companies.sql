-- Contacts belong to the company whose evidence shows them.
--
-- `lead_emails` was one row per address ("first finder keeps it"): a website that listed another
-- company's address took it, across tenants, and the real company fell through to a paid Lusha
-- lookup or `no_contacts`. It becomes the address <-> company association: one row per company
-- whose evidence shows the address, with that evidence (source, the page's URL) and whether the
-- address is at the company's own domain. `contacts.company_id` stays the person's primary
-- company, which a company at the address's own domain takes over (leadgen_core/enrich/contacts_store.py).
ALTER TABLE lead_emails DROP CONSTRAINT lead_emails_pkey;
ALTER TABLE lead_emails ADD PRIMARY KEY (email, company_id);
ALTER TABLE lead_emails
    ADD COLUMN evidence_url text,
    ADD COLUMN domain_match boolean NOT NULL DEFAULT false;
CREATE INDEX idx_lead_emails_contact ON lead_emails (contact_id) WHERE contact_id IS NOT NULL;

UPDATE lead_emails le SET domain_match = true
FROM companies c
WHERE c.company_id = le.company_id AND c.website_domain IS NOT NULL
  AND lower(c.website_domain) = ANY(leadgen_domain_suffixes(split_part(le.email, '@', 2)));
