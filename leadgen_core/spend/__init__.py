"""Spending vendors' money: the Spender (cache, reservation, settlement, crash journal), the budget
ledger, the shared rate limiters and quotas, the OpenAI token buckets, and the dry-run forecast."""
