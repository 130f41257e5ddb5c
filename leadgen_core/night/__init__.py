"""A tenant-night's bookkeeping: target selection, per-company stage outcomes, stage timings, data-quality
probes and start staggering."""
