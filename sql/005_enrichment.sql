-- Enrichment: the crawled text handed from crawled_sites to web_extractions.
--
-- With PERSIST_CRAWL_CORPUS off, company_web_snapshots.corpus stays NULL, yet the extraction of
-- the same night must read what the crawl saw (crawling the site twice would double the load we
-- put on it). The text waits here, global like the snapshot it belongs to, and is deleted once
-- the company's extraction for that day is stored (or by the extraction stage's purge of
-- hand-offs older than two days). No tenant_id: it is shared data like the snapshot, so no RLS.
CREATE TABLE company_web_corpus_handoff (
    company_id   bigint NOT NULL REFERENCES companies(company_id),
    crawled_on   date NOT NULL,
    corpus       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, crawled_on)
);
CREATE INDEX idx_company_web_corpus_handoff_crawled ON company_web_corpus_handoff (crawled_on);

GRANT SELECT, INSERT, UPDATE, DELETE ON company_web_corpus_handoff TO leadgen_rw;
