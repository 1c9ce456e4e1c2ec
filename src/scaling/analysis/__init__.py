"""Analysis: scaling-law fits, emergence, transfer and the claims' rules; reads records, never
model or training code."""
