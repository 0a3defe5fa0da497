"""The finance dashboard: /dashboard, pages for named users (login, charts, suspense, refunds)."""
