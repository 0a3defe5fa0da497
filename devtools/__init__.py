"""Developer tools: fakes and helpers for tests, benchmarks and the offline demo.

Not part of the shipped package (pyproject's package list names only `premium_billing` and
`webhooks`): nothing under `premium_billing` or `webhooks` may import from here."""
