"""From enriched targets to leads: scoring, the Odoo sync, exports, retention and previews.

    report = run_score_stage(ScoreContext(tenant_id=..., day=..., run_id=..., settings=..., ...))
    report = run_sync_stage(SyncContext(tenant_id=..., day=..., settings=..., environ=os.environ, ...))
    rows, cursor = export_scores(conn, tenant_id="acme", day=None, after=None, limit=500)
    counts = purge(conn, now=datetime.now(UTC), retention_days=180, verify_ttl_days=90)

Pure domain: no Dagster. Connections come in as factories, the secret's environment as a mapping.
"""

from __future__ import annotations

from leadgen_core.leads.connection import OdooConnection, load_connection
from leadgen_core.leads.export import Cursor, ExportRow, export_scores, write_csv, write_json
from leadgen_core.leads.inputs import CompanyEvidence, ContactFact, TenantScoring, load_evidence, tenant_scoring
from leadgen_core.leads.preview import ScoreSummary, day_summary, markdown_table, top_leads
from leadgen_core.leads.retention import RetentionResult, purge
from leadgen_core.leads.score_stage import ScoreContext, ScoreReport, run_score_stage, score_night
from leadgen_core.leads.sync_stage import SyncContext, SyncReport, run_sync_stage, sync_night

__all__ = [
    "CompanyEvidence",
    "ContactFact",
    "Cursor",
    "ExportRow",
    "OdooConnection",
    "RetentionResult",
    "ScoreContext",
    "ScoreReport",
    "ScoreSummary",
    "SyncContext",
    "SyncReport",
    "TenantScoring",
    "day_summary",
    "export_scores",
    "load_connection",
    "load_evidence",
    "markdown_table",
    "purge",
    "run_score_stage",
    "run_sync_stage",
    "score_night",
    "sync_night",
    "tenant_scoring",
    "top_leads",
    "write_csv",
    "write_json",
]
