"""The policyholder portal: `GET /portal/{token}` (the link in every email), its Pay now,
Pay everything overdue and autopay forms, the statement of account (page and PDF), and
`POST /api/v1/policyholders/{id}/portal-link`."""
